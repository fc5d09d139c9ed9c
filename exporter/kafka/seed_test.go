package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/internal/testbed"
)

// A replica that starts while one of three brokers is down (restarted by a
// crash while a broker is being rolled) seeds its log group from the other
// two, as every Kafka client bootstraps from any live seed. Before, the
// first request went to a random seed and one refused connection was fatal:
// the process exited at start (seen in the soak: a SIGKILLed replica that
// never came back while broker 2 was stopped).
func TestSeedGroupWithOneBrokerDown(t *testing.T) {
	c := testbed.Cluster(t)
	seeds := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	offs := kadm.Offsets{}
	for p := range int32(6) {
		offs.AddOffset(testbed.Topic, p, int64(10+p), -1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if r, err := adm.CommitOffsets(ctx, "old", offs); err != nil || r.Error() != nil {
		t.Fatalf("commit: %v %v", err, r.Error())
	}
	// Node 2 goes away: its port refuses connections, as a stopped broker's.
	if err := c.RemoveNode(2); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Kafka
	cfg.Brokers = seeds
	// Each try is a fresh client with a random first seed: a third of them
	// start at the dead one.
	var errs []string
	for i := range 12 {
		group := fmt.Sprintf("new-%d", i)
		n, err := SeedGroup(ctx, cfg, "old", group)
		if err != nil || n != 6 {
			errs = append(errs, fmt.Sprintf("try %d: seeded %d of 6 partitions: %v", i, n, err))
		}
	}
	if len(errs) > 0 {
		t.Error(strings.Join(errs, "\n"))
	}
}
