package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRunWritesStdout(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--count=50", "--rate=0", "--clock=simulated", "--format=combined"}, &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 50 {
		t.Errorf("%d lines", n)
	}
	if !strings.Contains(out.String(), "[10/Oct/2025:13:55:36 +0000]") {
		t.Errorf("simulated clock not used:\n%s", out.String()[:200])
	}
	if !strings.Contains(errOut.String(), "loggen: 50 lines written") {
		t.Errorf("summary: %q", errOut.String())
	}
}

func TestRunRejects(t *testing.T) {
	for _, args := range [][]string{{"--format=apache"}, {"--malformed-ratio=2"}, {"--hosts=,"}} {
		var out, errOut bytes.Buffer
		if err := run(context.Background(), args, &out, &errOut); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestRunKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "nginxlog"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out, errOut bytes.Buffer
	args := []string{"--count=5000", "--rate=0", "--envelope", "--kafka.brokers=" + strings.Join(c.ListenAddrs(), ",")}
	if err := run(context.Background(), args, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "nginxlog")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 5000 || out.Len() != 0 {
		t.Errorf("%d records in the topic, %d bytes on stdout; stderr %q", total, out.Len(), errOut.String())
	}
}
