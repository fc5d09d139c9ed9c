package loggen

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestProduce(t *testing.T) {
	const topic, n = "nginxlog", 20000
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	g := newGen(t, Envelope(true), Hosts("web-1", "web-2", "web-3", "web-4"), MalformedRatio(0.01))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acked, err := Produce(ctx, prod, topic, g, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	tot := g.Totals()
	if acked != n || tot.Lines != n {
		t.Fatalf("acked %d, generated %d, want %d", acked, tot.Lines, n)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var (
		got       int64
		bytesSeen int64
		partition = map[string]int32{}
		offset    = map[string]int64{}
	)
	for got < n {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", got, n, err)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			got++
			var e struct {
				Message string `json:"message"`
				Log     struct {
					Offset int64 `json:"offset"`
				} `json:"log"`
				Host struct {
					Name string `json:"name"`
				} `json:"host"`
			}
			if err := json.Unmarshal(r.Value, &e); err != nil {
				t.Fatalf("record %d/%d: %v", r.Partition, r.Offset, err)
			}
			h := string(r.Key)
			if h != e.Host.Name {
				t.Fatalf("key %q, host.name %q", h, e.Host.Name)
			}
			// One machine, one partition, in the order the lines were written.
			if p, ok := partition[h]; ok && p != r.Partition {
				t.Fatalf("%s in partitions %d and %d", h, p, r.Partition)
			}
			partition[h] = r.Partition
			// (Exact offsets are TestEnvelope's; a binary line's length is
			// lost to U+FFFD here.)
			if o, ok := offset[h]; ok && e.Log.Offset <= o {
				t.Fatalf("%s: log.offset %d after %d: out of order", h, e.Log.Offset, o)
			}
			offset[h] = e.Log.Offset
			bytesSeen += int64(len(r.Value))
		})
	}
	if got != tot.Lines || bytesSeen != tot.EnvelopeBytes {
		t.Errorf("consumed %d records (%d bytes), generated %d (%d bytes)", got, bytesSeen, tot.Lines, tot.EnvelopeBytes)
	}
	if len(partition) != 4 {
		t.Errorf("records came from %d hosts, want 4", len(partition))
	}
}

func TestProduceStopsWithContext(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "nginxlog"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	g := newGen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	acked, err := Produce(ctx, cl, "nginxlog", g, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	// No limit: returning at all shows ctx stops it. 1000 lines/s for 0.3 s:
	// at most about 300 (fewer, even none, on a loaded machine), never the
	// thousands an unpaced loop makes.
	el := time.Since(start)
	if el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	if float64(acked) > 1000*el.Seconds()+20 || acked != g.Totals().Lines {
		t.Errorf("acked %d, generated %d", acked, g.Totals().Lines)
	}
}

func TestProduceReportsErrors(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "nginxlog"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchMaxBytes(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Records bigger than a batch may hold fail at once.
	g := newGen(t, Envelope(true), WithFormat(JSON))
	_, err = Produce(context.Background(), cl, "nginxlog", g, 0, 100)
	if err == nil || !strings.Contains(err.Error(), "loggen: produce to nginxlog") {
		t.Fatalf("error %v", err)
	}
}

func TestWrite(t *testing.T) {
	var out bytes.Buffer
	g := newGen(t, WithFormat(Combined))
	n, err := Write(context.Background(), &out, g, 0, 1000)
	if err != nil || n != 1000 {
		t.Fatalf("Write: %d, %v", n, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1000 || int64(out.Len()) != g.Totals().Bytes+1000 {
		t.Fatalf("%d lines, %d bytes; totals %+v", len(lines), out.Len(), g.Totals())
	}

	// Paced: 400 lines at 4000/s take about 0.1 s.
	out.Reset()
	start := time.Now()
	if n, err := Write(context.Background(), &out, newGen(t), 4000, 400); err != nil || n != 400 {
		t.Fatalf("Write: %d, %v", n, err)
	}
	if el := time.Since(start); el < 80*time.Millisecond || el > 10*time.Second {
		t.Errorf("400 lines at 4000/s took %v", el)
	}
}

func TestPacer(t *testing.T) {
	p := newPacer(10000)
	ctx := context.Background()
	start := time.Now()
	for range 2000 {
		if err := p.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Only the lower bound is sharp: a loaded machine wakes sleepers late.
	if el := time.Since(start); el < 150*time.Millisecond || el > 10*time.Second {
		t.Errorf("2000 tokens at 10000/s took %v, want about 0.2 s", el)
	}
	// Idle time saves up no more than the burst.
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	for range 300 {
		p.wait(ctx)
	}
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Errorf("300 tokens after idling took %v: the burst is not bounded", el)
	}
}
