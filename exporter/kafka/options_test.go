package kafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// The fetch keys reach the client: a key read and never passed on would
// look set in check-config and change nothing.
func TestFetchOptionsReachTheClient(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*config.Kafka)
		want map[string]any
	}{
		{"defaults", func(*config.Kafka) {}, map[string]any{
			"FetchMinBytes": int32(128 << 10), "FetchMaxWait": 250 * time.Millisecond,
			"FetchMaxBytes": int32(4 << 20), "FetchMaxPartitionBytes": int32(128 << 10),
		}},
		{"set", func(k *config.Kafka) {
			k.FetchMinBytes, k.FetchMaxWait = 1, 2*time.Second
			k.FetchMaxBytes, k.FetchMaxPartitionBytes = 8<<20, 256<<10
		}, map[string]any{
			"FetchMinBytes": int32(1), "FetchMaxWait": 2 * time.Second,
			"FetchMaxBytes": int32(8 << 20), "FetchMaxPartitionBytes": int32(256 << 10),
		}},
		// A partition's backlog must be able to fill the minimum on its own.
		{"minimum above a partition's bytes", func(k *config.Kafka) {
			k.FetchMaxPartitionBytes = 64 << 10
		}, map[string]any{
			"FetchMinBytes": int32(64 << 10), "FetchMaxPartitionBytes": int32(64 << 10),
		}},
		{"minimum set above a partition's bytes", func(k *config.Kafka) {
			k.FetchMinBytes, k.FetchMaxPartitionBytes = 1<<20, 256<<10
		}, map[string]any{
			"FetchMinBytes": int32(256 << 10), "FetchMaxPartitionBytes": int32(256 << 10),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := config.Default().Kafka
			k.Brokers = []string{"127.0.0.1:1"}
			tc.set(&k)
			opts, err := consumeOpts(k)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			got := map[string]any{
				"FetchMinBytes":          cl.OptValue(kgo.FetchMinBytes),
				"FetchMaxWait":           cl.OptValue(kgo.FetchMaxWait),
				"FetchMaxBytes":          cl.OptValue(kgo.FetchMaxBytes),
				"FetchMaxPartitionBytes": cl.OptValue(kgo.FetchMaxPartitionBytes),
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %v (%T), want %v (%T)", k, got[k], got[k], w, w)
				}
			}
		})
	}
}
