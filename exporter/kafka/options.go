package kafka

import (
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafkaclient"
)

// consumeOpts adds to the connection options what makes a consumer of the
// log topics: the topics, where a new group starts and the fetch sizes.
func consumeOpts(cfg config.Kafka) ([]kgo.Opt, error) {
	opts, err := kafkaclient.Opts(cfg)
	if err != nil {
		return nil, err
	}
	if len(cfg.Topics) == 0 {
		return nil, fmt.Errorf("kafka.topics: no topic configured")
	}
	opts = append(opts, kgo.ConsumeTopics(cfg.Topics...))
	if cfg.TopicsRegex {
		opts = append(opts, kgo.ConsumeRegex())
	}
	switch strings.ToLower(cfg.StartOffset) {
	case "", "earliest":
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	case "latest":
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	default:
		return nil, fmt.Errorf("kafka.start_offset: want earliest or latest, got %q", cfg.StartOffset)
	}
	if cfg.FetchMaxBytes > 0 {
		opts = append(opts, kgo.FetchMaxBytes(int32(cfg.FetchMaxBytes)))
	}
	if cfg.FetchMaxPartitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(int32(cfg.FetchMaxPartitionBytes)))
	}
	if n := cfg.FetchMinBytes; n > 0 {
		// A broker counts at most fetch_max_partition_bytes of a partition
		// towards the minimum. A member that owns a single partition on a
		// broker (after a rebalance, say) could never fill more, and every
		// fetch of its backlog would wait out fetch_max_wait.
		if p := cfg.FetchMaxPartitionBytes; p > 0 && n > p {
			n = p
		}
		opts = append(opts, kgo.FetchMinBytes(int32(n)))
	}
	if cfg.FetchMaxWait > 0 {
		opts = append(opts, kgo.FetchMaxWait(cfg.FetchMaxWait))
	}
	return opts, nil
}
