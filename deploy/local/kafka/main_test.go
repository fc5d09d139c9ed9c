package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A stopped broker must look as it does on a real cluster: out of the broker
// list and every ISR, still a replica, listed offline; and it comes back.
func TestStoppedBrokerIsAnOfflineReplica(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "nginxlog"), kfake.ClusterID(clusterID))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ports []int
	for _, a := range c.ListenAddrs() {
		_, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		ports = append(ports, p)
	}
	k := &cluster{c: c, topic: "nginxlog", ports: ports, stopped: map[int32]bool{}}
	c.ControlKey(int16(kmsg.Metadata), k.rewriteMetadata)
	c.ControlKey(int16(kmsg.OffsetForLeaderEpoch), k.offsetForLeaderEpoch)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	check := func(wantBrokers, wantISR, wantOffline int) {
		t.Helper()
		var last string
		for ctx.Err() == nil {
			md, err := adm.Metadata(ctx, "nginxlog")
			if err != nil {
				last = err.Error()
				continue
			}
			td := md.Topics["nginxlog"]
			ok := len(md.Brokers) == wantBrokers && len(td.Partitions) == 6
			for _, p := range td.Partitions {
				ok = ok && len(p.Replicas) == 3 && len(p.ISR) == wantISR && len(p.OfflineReplicas) == wantOffline && p.Err == nil
			}
			if ok {
				return
			}
			last = fmt.Sprintf("%d brokers, partitions %+v", len(md.Brokers), md.Topics["nginxlog"].Partitions)
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("metadata never showed %d brokers, ISR %d, offline %d: %s", wantBrokers, wantISR, wantOffline, last)
	}
	check(3, 3, 0)
	if err := k.stop(2); err != nil {
		t.Fatal(err)
	}
	check(2, 2, 1)
	// Produce still works with a broker down.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "nginxlog", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce with broker 2 stopped: %v", err)
	}
	if err := k.start(2); err != nil {
		t.Fatal(err)
	}
	check(3, 3, 0)
}

// A consumer must carry on where it was when a broker stops (leader epochs
// bump): no rewind to offset 0, no record read twice.
func TestConsumerKeepsItsPlaceAcrossBrokerStop(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "nginxlog"), kfake.ClusterID(clusterID))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ports []int
	for _, a := range c.ListenAddrs() {
		_, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		ports = append(ports, p)
	}
	k := &cluster{c: c, topic: "nginxlog", ports: ports, stopped: map[int32]bool{}}
	c.ControlKey(int16(kmsg.Metadata), k.rewriteMetadata)
	c.ControlKey(int16(kmsg.OffsetForLeaderEpoch), k.offsetForLeaderEpoch)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("nginxlog"), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics("nginxlog"), kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int{}
	produce := func(from, n int) {
		for i := from; i < from+n; i++ {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
		}
	}
	consume := func(want int) {
		for len(seen) < want && ctx.Err() == nil {
			fs := cons.PollFetches(ctx)
			fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
			fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
		}
	}
	produce(0, 200)
	consume(200)
	if err := k.stop(2); err != nil {
		t.Fatal(err)
	}
	produce(200, 200)
	consume(400)
	for v, n := range seen {
		if n != 1 {
			t.Errorf("record %s read %d times", v, n)
		}
	}
	if len(seen) != 400 {
		t.Errorf("read %d distinct records, want 400", len(seen))
	}
}

// A shrunk ISR (the control the soak uses) must show as a partition under
// its minimum ISR: the leader alone in sync, every replica still listed, no
// broker offline; the other partitions untouched; and it must come back.
func TestShrunkISRIsReportedAndRestored(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "nginxlog"), kfake.ClusterID(clusterID))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ports []int
	for _, a := range c.ListenAddrs() {
		_, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		ports = append(ports, p)
	}
	k := &cluster{c: c, topic: "nginxlog", ports: ports, partitions: 6, stopped: map[int32]bool{}}
	c.ControlKey(int16(kmsg.Metadata), k.rewriteMetadata)
	srv := httptest.NewServer(k.routes())
	defer srv.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	post := func(path string, want int) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	// isr polls Metadata until partition 4 shows wantISR in-sync replicas and
	// every other partition 3, then checks the rest of the answer.
	isr := func(wantISR int) {
		t.Helper()
		var last string
		for ctx.Err() == nil {
			md, err := adm.Metadata(ctx, "nginxlog")
			if err != nil {
				last = err.Error()
				continue
			}
			ok := len(md.Brokers) == 3 && len(md.Topics["nginxlog"].Partitions) == 6
			for _, p := range md.Topics["nginxlog"].Partitions {
				want := 3
				if p.Partition == 4 {
					want = wantISR
				}
				ok = ok && len(p.Replicas) == 3 && len(p.ISR) == want && len(p.OfflineReplicas) == 0 && p.Err == nil &&
					p.ISR[0] == p.Leader
			}
			if ok {
				return
			}
			last = fmt.Sprintf("%d brokers, partitions %+v", len(md.Brokers), md.Topics["nginxlog"].Partitions)
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("metadata never showed partition 4 with ISR %d and the others 3: %s", wantISR, last)
	}
	isr(3)
	post("/partitions/4/shrink-isr", http.StatusOK)
	isr(1)
	post("/partitions/6/shrink-isr", http.StatusNotFound)
	post("/partitions/4/restore-isr", http.StatusOK)
	isr(3)
}
