package kafkahealth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// joinAndCommit starts a member of group on topic that reads n records and
// then commits exactly offsets (partition -> offset; a partition left out
// gets no commit), as each sink's member commits only what it has handled.
// The member stays in the group until the test ends.
func joinAndCommit(t *testing.T, hc *healthCluster, group, topic string, n int, offsets map[int32]int64) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(hc.c.ListenAddrs()...), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for read := 0; read < n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("group %s read %d of %d records", group, read, n)
		}
		read += fs.NumRecords()
	}
	commit := map[string]map[int32]kgo.EpochOffset{topic: {}}
	for p, o := range offsets {
		commit[topic][p] = kgo.EpochOffset{Epoch: -1, Offset: o}
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) { cerr = err })
	if cerr != nil {
		t.Fatalf("group %s commit: %v", group, cerr)
	}
}

// The exporter runs one group per sink on the same topic: the metrics group
// (kafka.group) and the log group (loki.group). With the default group filter
// the poller reports both, each with its own lag, lag seconds and
// uncommitted partitions, so that rules can tell a stalled log path from a
// stalled metrics path.
func TestHealthReportsBothSinkGroups(t *testing.T) {
	hc := newHealthCluster(t)
	hc.createTopic(t, "nginxlog", 3, 3, nil)
	old := time.Now().Add(-100 * time.Second).Truncate(time.Millisecond)
	hc.produce(t, "nginxlog", []int32{0, 1, 2}, 10, old)
	// The metrics path has counted everything; the log path is behind (its
	// store is down) and never committed on partition 2.
	joinAndCommit(t, hc, "accesslog-exporter", "nginxlog", 30, map[int32]int64{0: 10, 1: 10, 2: 10})
	joinAndCommit(t, hc, "accesslog-exporter-loki", "nginxlog", 30, map[int32]int64{0: 4, 1: 7})

	h := newTestHealth(t, hc, testHealthConfig()) // default filter: groups ".*"
	const m, l = "accesslog-exporter", "accesslog-exporter-loki"
	series := func(name, group string, part int) string {
		if part < 0 {
			return fmt.Sprintf(`%s{consumergroup=%q,topic="nginxlog"}`, name, group)
		}
		return fmt.Sprintf(`%s{consumergroup=%q,partition="%d",topic="nginxlog"}`, name, group, part)
	}
	got := eventually(t, h, map[string]float64{
		`kafka_consumergroup_members{consumergroup="` + m + `"}`: 1,
		`kafka_consumergroup_members{consumergroup="` + l + `"}`: 1,

		series("kafka_consumergroup_lag", m, 0):                                        0,
		series("kafka_consumergroup_lag", m, 2):                                        0,
		series("kafka_consumergroup_lag_sum", m, -1):                                   0,
		series("accesslog_exporter_kafka_consumergroup_lag_seconds", m, 0):             0,
		series("accesslog_exporter_kafka_consumergroup_lag_seconds", m, 2):             0,
		series("accesslog_exporter_kafka_consumergroup_uncommitted_partitions", m, -1): 0,

		series("kafka_consumergroup_lag", l, 0):                                        6,
		series("kafka_consumergroup_lag", l, 1):                                        3,
		series("kafka_consumergroup_lag", l, 2):                                        -1,
		series("kafka_consumergroup_lag_sum", l, -1):                                   9,
		series("kafka_consumergroup_current_offset", l, 2):                             -1,
		series("accesslog_exporter_kafka_consumergroup_lag_seconds", l, 2):             absent,
		series("accesslog_exporter_kafka_consumergroup_uncommitted_partitions", l, -1): 1,
	})
	for _, p := range []int{0, 1} {
		k := series("accesslog_exporter_kafka_consumergroup_lag_seconds", l, p)
		if v, ok := got[k]; !ok || v < 100 || v > 130 {
			t.Errorf("%s = %g (present %v), want about 100", k, v, ok)
		}
	}
}

// Retention is read with the other topic configs (one DescribeConfigs) so
// that rules can compare the log path's lag in seconds with it.
func TestHealthTopicRetention(t *testing.T) {
	hc := newHealthCluster(t)
	hc.createTopic(t, "nginxlog", 3, 3, map[string]*string{
		"retention.ms":    kmsg.StringPtr("3600000"),
		"retention.bytes": kmsg.StringPtr("1073741824"),
	})
	hc.createTopic(t, "defaults", 1, 3, nil)
	hc.createTopic(t, "forever", 1, 3, map[string]*string{"retention.ms": kmsg.StringPtr("-1")})
	hc.createTopic(t, "compacted", 1, 3, map[string]*string{
		"cleanup.policy": kmsg.StringPtr("compact"),
		"retention.ms":   kmsg.StringPtr("3600000"),
	})
	hc.createTopic(t, "both", 1, 3, map[string]*string{
		"cleanup.policy": kmsg.StringPtr("compact,delete"),
		"retention.ms":   kmsg.StringPtr("60000"),
	})
	h := newTestHealth(t, hc, testHealthConfig())
	expect(t, mustPoll(t, h), map[string]float64{
		`accesslog_exporter_kafka_topic_retention_seconds{topic="nginxlog"}`:   3600,
		`accesslog_exporter_kafka_topic_retention_bytes{topic="nginxlog"}`:     1 << 30,
		`accesslog_exporter_kafka_topic_retention_seconds{topic="defaults"}`:   7 * 24 * 3600, // Kafka's default, as kfake reports it
		`accesslog_exporter_kafka_topic_retention_bytes{topic="defaults"}`:     -1,
		`accesslog_exporter_kafka_topic_retention_seconds{topic="forever"}`:    -1,
		`accesslog_exporter_kafka_topic_retention_seconds{topic="compacted"}`:  -1,
		`accesslog_exporter_kafka_topic_retention_bytes{topic="compacted"}`:    -1,
		`accesslog_exporter_kafka_topic_retention_seconds{topic="both"}`:       60,
		`accesslog_exporter_kafka_topic_min_insync_replicas{topic="nginxlog"}`: 1,
	})

	// A change made with AlterConfigs shows at the next poll.
	resps, err := hc.adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: kmsg.StringPtr("7200000")},
	}, "nginxlog")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resps {
		if r.Err != nil {
			t.Fatalf("alter %s: %v", r.Name, r.Err)
		}
	}
	eventually(t, h, map[string]float64{
		`accesslog_exporter_kafka_topic_retention_seconds{topic="nginxlog"}`: 7200,
		`accesslog_exporter_kafka_topic_retention_bytes{topic="nginxlog"}`:   1 << 30,
	})
}
