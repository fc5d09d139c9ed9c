package kafkahealth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const consumerOffsetsTopic = "__consumer_offsets"

// Thresholds for accesslog_exporter_kafka_topic_durability_risk: with fewer
// than 3 replicas or a min.insync.replicas below 2, one lost broker loses
// acknowledged data or stops the topic.
const (
	safeReplicationFactor = 3
	safeMinISR            = 2
)

type pollErr struct {
	kind string
	err  error
}

// partState is what one poll learnt about one partition.
type partState struct {
	leader      int32
	replicas    int
	isr         int
	preferred   bool
	offline     bool
	start, end  int64 // -1 when not read
	hasOffsets  bool
	hasStartOff bool
}

type topicState struct {
	name  string
	parts []partState // by partition number; metadata gives them dense
}

// poll reads the cluster in one pass. fatal is set when the result cannot
// stand for the cluster (no metadata, no partition offsets); other errors
// leave out what they concern and are reported with their kind.
//
// Order matters for lag: group offsets are read before the end offsets, so
// that end >= committed even while the group commits meanwhile, and lag can
// never come out negative from a race.
func (h *Poller) poll(ctx context.Context) (snap *healthSnapshot, errs []pollErr, fatal bool) {
	fail := func(kind string, err error) { errs = append(errs, pollErr{kind, err}) }

	md, err := h.adm.Metadata(ctx)
	if err != nil {
		fail(errKindMetadata, err)
		return nil, errs, true
	}
	var out sortedMetrics
	out.add(descBrokers, float64(len(md.Brokers)))
	for _, b := range md.Brokers {
		out.add(descBrokerInfo, 1, strconv.Itoa(int(b.NodeID)), net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	topics, names, durable := h.topicsOf(md, fail)

	// Groups, then their committed offsets, then the partitions' offsets.
	groups, gerrs := h.readGroups(ctx, topics)
	errs = append(errs, gerrs...)
	if read, err := h.readOffsets(ctx, topics, names); err != nil {
		// A leader that just died fails its share; the rest stands. With
		// nothing read at all the result cannot stand for the cluster.
		fail(errKindOffsets, err)
		if read == 0 {
			return nil, errs, true
		}
	}
	configs, err := h.readTopicConfigs(ctx, append(slices.Clone(names), durable...))
	if err != nil {
		fail(errKindConfigs, err)
	}
	emitPartitions(&out, topics, names, configs)
	h.emitReplication(ctx, &out, md, names, durable, configs)

	lagSeconds, capped, lerr := h.readLagSeconds(ctx, md, topics, groups)
	if lerr != nil {
		fail(errKindLagSeconds, lerr)
	}
	h.lagCapped.Set(float64(capped))
	emitGroups(&out, groups, topics, lagSeconds)
	return &healthSnapshot{metrics: out.sorted(), at: time.Now()}, errs, false
}

// topicsOf picks the topics reported on from the metadata, and the durable
// ones checked whatever the filter.
func (h *Poller) topicsOf(md kadm.Metadata, fail func(string, error)) (topics map[string]*topicState, names, durable []string) {
	topics = map[string]*topicState{}
	for _, td := range md.Topics.Sorted() {
		if td.Err != nil {
			if !errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
				fail(errKindMetadata, fmt.Errorf("topic %s: %w", td.Topic, td.Err))
			}
			continue
		}
		report := h.filter.topic(td.Topic, td.IsInternal)
		if h.filter.durable(td.Topic) {
			durable = append(durable, td.Topic)
		}
		if !report {
			continue
		}
		ts := &topicState{name: td.Topic, parts: make([]partState, len(td.Partitions))}
		for _, pd := range td.Partitions {
			if pd.Partition < 0 || int(pd.Partition) >= len(ts.parts) {
				continue // a gap in partition numbers: not a real cluster
			}
			ts.parts[pd.Partition] = partStateOf(pd)
		}
		topics[td.Topic] = ts
		names = append(names, td.Topic)
	}
	return topics, names, durable
}

// emitPartitions emits each reported partition's offsets, leader and
// replicas, and each topic's offline and under-min-ISR counts.
func emitPartitions(out *sortedMetrics, topics map[string]*topicState, names []string, configs map[string]topicConfig) {
	for _, name := range names {
		ts := topics[name]
		out.add(descTopicPartitions, float64(len(ts.parts)), name)
		var offline, underMin float64
		tc := configs[name]
		mi, haveMI := tc.minISR, tc.hasMinISR
		for p, ps := range ts.parts {
			part := strconv.Itoa(p)
			if ps.hasOffsets {
				out.add(descTopicCurrentOffset, float64(ps.end), name, part)
			}
			if ps.hasStartOff {
				out.add(descTopicOldestOffset, float64(ps.start), name, part)
			}
			out.add(descPartitionLeader, float64(ps.leader), name, part)
			out.add(descPartitionReplicas, float64(ps.replicas), name, part)
			out.add(descPartitionISR, float64(ps.isr), name, part)
			out.add(descPartitionPreferred, b2f(ps.preferred), name, part)
			out.add(descPartitionUnderReplicated, b2f(ps.isr < ps.replicas), name, part)
			if ps.offline {
				offline++
			}
			if haveMI && ps.isr < mi {
				underMin++
			}
		}
		out.add(descOfflinePartitions, offline, name)
		if haveMI {
			out.add(descUnderMinISRPartitions, underMin, name)
		}
	}
}

// emitReplication emits the replication and retention of every reported
// topic, and the durability risk of the durable ones (__consumer_offsets
// included before it exists).
func (h *Poller) emitReplication(ctx context.Context, out *sortedMetrics, md kadm.Metadata, names, durable []string, configs map[string]topicConfig) {
	for _, name := range mergeSorted(names, durable) {
		rf := replicationFactor(md.Topics[name])
		out.add(descReplicationFactor, float64(rf), name)
		tc := configs[name]
		mi, haveMI := tc.minISR, tc.hasMinISR
		if haveMI {
			out.add(descMinISR, float64(mi), name)
		}
		if tc.hasRetentionMs {
			out.add(descRetentionSeconds, retentionSeconds(tc.retentionMs), name)
		}
		if tc.hasRetentionBytes {
			out.add(descRetentionBytes, float64(tc.retentionBytes), name)
		}
		if h.filter.durable(name) {
			out.add(descDurabilityRisk, b2f(rf < safeReplicationFactor || (haveMI && mi < safeMinISR)), name)
		}
	}
	if _, ok := md.Topics[consumerOffsetsTopic]; !ok {
		// Not created until the first group commits: what it will be
		// created with is the brokers' offsets.topic.replication.factor.
		if rf, mi, ok := h.readOffsetsTopicDefaults(ctx, md); ok {
			out.add(descReplicationFactor, float64(rf), consumerOffsetsTopic)
			out.add(descMinISR, float64(mi), consumerOffsetsTopic)
			out.add(descDurabilityRisk, b2f(rf < safeReplicationFactor || mi < safeMinISR), consumerOffsetsTopic)
		}
	}
}

// emitGroups emits each group's members, committed offsets and lag, in
// offsets and in seconds.
func emitGroups(out *sortedMetrics, groups []groupState, topics map[string]*topicState, lagSeconds map[tpo]float64) {
	for _, g := range groups {
		out.add(descGroupMembers, float64(g.members), g.name)
		for _, gt := range g.topics {
			ts := topics[gt.topic]
			var offSum, lagSum, uncommitted float64
			for p, commit := range gt.commits {
				part := strconv.Itoa(p)
				out.add(descGroupCurrentOffset, float64(commit), g.name, gt.topic, part)
				if commit < 0 {
					// As kafka_exporter: -1 on the partition, nothing in the sums.
					out.add(descGroupLag, -1, g.name, gt.topic, part)
					uncommitted++
					continue
				}
				offSum += float64(commit)
				ps := ts.parts[p]
				if !ps.hasOffsets {
					continue // offline: no end offset, no honest lag
				}
				lag := max(ps.end-commit, 0)
				lagSum += float64(lag)
				out.add(descGroupLag, float64(lag), g.name, gt.topic, part)
				if lag == 0 {
					out.add(descGroupLagSeconds, 0, g.name, gt.topic, part)
				} else if s, ok := lagSeconds[tpo{gt.topic, int32(p), commit}]; ok {
					out.add(descGroupLagSeconds, s, g.name, gt.topic, part)
				}
			}
			out.add(descGroupCurrentOffsetSum, offSum, g.name, gt.topic)
			out.add(descGroupLagSum, lagSum, g.name, gt.topic)
			out.add(descGroupUncommitted, uncommitted, g.name, gt.topic)
		}
	}
}

// sortedMetrics collects a poll's metrics and hands them out in the order
// the registry sorts them into (by family, then by label values in label
// name order), so that its sort at every scrape finds them sorted and is
// cheap: with a quarter million series, that sort is most of a scrape.
type sortedMetrics struct {
	byDesc map[*prometheus.Desc][]sortedMetric
}

type sortedMetric struct {
	key []string // label values in label name order
	m   prometheus.Metric
}

// labelOrder maps each descriptor's label name order to its variable label
// positions: topic,partition is sorted as partition,topic.
var labelOrder = map[*prometheus.Desc][]int{
	descBrokerInfo:               {1, 0}, // address, id
	descTopicCurrentOffset:       {1, 0},
	descTopicOldestOffset:        {1, 0},
	descPartitionLeader:          {1, 0},
	descPartitionReplicas:        {1, 0},
	descPartitionISR:             {1, 0},
	descPartitionPreferred:       {1, 0},
	descPartitionUnderReplicated: {1, 0},
	descGroupCurrentOffset:       {0, 2, 1}, // consumergroup, partition, topic
	descGroupLag:                 {0, 2, 1},
	descGroupLagSeconds:          {0, 2, 1},
}

func (s *sortedMetrics) add(d *prometheus.Desc, v float64, labels ...string) {
	if s.byDesc == nil {
		s.byDesc = map[*prometheus.Desc][]sortedMetric{}
	}
	key := labels
	if order, ok := labelOrder[d]; ok {
		key = make([]string, len(labels))
		for i, j := range order {
			key[i] = labels[j]
		}
	}
	s.byDesc[d] = append(s.byDesc[d], sortedMetric{key, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)})
}

func (s *sortedMetrics) sorted() []prometheus.Metric {
	var n int
	for _, ms := range s.byDesc {
		n += len(ms)
	}
	out := make([]prometheus.Metric, 0, n)
	for _, d := range healthDescs {
		ms := s.byDesc[d]
		slices.SortFunc(ms, func(a, b sortedMetric) int { return slices.Compare(a.key, b.key) })
		for _, m := range ms {
			out = append(out, m.m)
		}
	}
	return out
}

func partStateOf(pd kadm.PartitionDetail) partState {
	ps := partState{
		leader:   pd.Leader,
		replicas: len(pd.Replicas),
		isr:      len(pd.ISR),
		start:    -1,
		end:      -1,
	}
	// A partition in error may still carry a leader (kfake keeps one): it
	// is judged offline by the error, not only by leader < 0. A missing
	// replica alone (REPLICA_NOT_AVAILABLE) leaves it online.
	ps.offline = pd.Leader < 0 || (pd.Err != nil && !errors.Is(pd.Err, kerr.ReplicaNotAvailable))
	if ps.offline {
		ps.leader = -1
	}
	ps.preferred = !ps.offline && len(pd.Replicas) > 0 && pd.Replicas[0] == pd.Leader
	return ps
}

func replicationFactor(td kadm.TopicDetail) int {
	rf := -1
	for _, pd := range td.Partitions {
		if rf < 0 || len(pd.Replicas) < rf {
			rf = len(pd.Replicas)
		}
	}
	return max(rf, 0)
}

// retentionSeconds is retention.ms in seconds, -1 (unlimited) kept as is.
func retentionSeconds(ms int64) float64 {
	if ms < 0 {
		return -1
	}
	return float64(ms) / 1000
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// mergeSorted returns the sorted union of two sorted lists.
func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// readOffsets lists the start and end offsets of every online partition of
// the reported topics, asking each leader directly. kadm's ListEndOffsets
// would re-read metadata and retry a leaderless partition until the poll's
// deadline, which would hide an offline partition behind a timeout. It
// returns how many requests succeeded.
func (h *Poller) readOffsets(ctx context.Context, topics map[string]*topicState, names []string) (read int, err error) {
	byLeader := map[int32]map[string][]int32{}
	for _, name := range names {
		for p, ps := range topics[name].parts {
			if ps.offline {
				continue
			}
			m := byLeader[ps.leader]
			if m == nil {
				m = map[string][]int32{}
				byLeader[ps.leader] = m
			}
			m[name] = append(m[name], int32(p))
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for leader, parts := range byLeader {
		for _, ts := range []int64{-2, -1} { // earliest, latest
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := kmsg.NewPtrListOffsetsRequest()
				req.ReplicaID = -1
				for _, name := range sortedKeys(parts) {
					rt := kmsg.NewListOffsetsRequestTopic()
					rt.Topic = name
					for _, p := range parts[name] {
						rp := kmsg.NewListOffsetsRequestTopicPartition()
						rp.Partition = p
						rp.Timestamp = ts
						rt.Partitions = append(rt.Partitions, rp)
					}
					req.Topics = append(req.Topics, rt)
				}
				kr, err := h.cl.Broker(int(leader)).Request(ctx, req)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("list offsets on broker %d: %w", leader, err))
					return
				}
				read++
				for _, t := range kr.(*kmsg.ListOffsetsResponse).Topics {
					ts0 := topics[t.Topic]
					if ts0 == nil {
						continue
					}
					for _, p := range t.Partitions {
						if p.ErrorCode != 0 || p.Partition < 0 || int(p.Partition) >= len(ts0.parts) {
							continue // leader moved since metadata: next poll
						}
						ps := &ts0.parts[p.Partition]
						if ts == -1 {
							ps.end, ps.hasOffsets = p.Offset, true
						} else {
							ps.start, ps.hasStartOff = p.Offset, true
						}
					}
				}
			}()
		}
	}
	wg.Wait()
	if len(byLeader) == 0 {
		read = 1 // nothing to read is not a failure
	}
	return read, errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// topicConfig is what DescribeConfigs says of one topic.
type topicConfig struct {
	minISR    int
	hasMinISR bool
	// retentionMs and retentionBytes are -1 when unlimited: Kafka's -1, or
	// a cleanup.policy without "delete" (a compacted topic deletes by key,
	// never by age or size).
	retentionMs, retentionBytes       int64
	hasRetentionMs, hasRetentionBytes bool
}

// topicConfigNames are the only keys asked for: the whole config of
// thousands of topics is large.
var topicConfigNames = []string{"min.insync.replicas", "retention.ms", "retention.bytes", "cleanup.policy"}

// readTopicConfigs reads min.insync.replicas and retention of the given
// topics in one DescribeConfigs.
func (h *Poller) readTopicConfigs(ctx context.Context, topics []string) (map[string]topicConfig, error) {
	out := make(map[string]topicConfig, len(topics))
	if len(topics) == 0 {
		return out, nil
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	for _, t := range mergeSorted(nil, topics) {
		rr := kmsg.NewDescribeConfigsRequestResource()
		rr.ResourceType = kmsg.ConfigResourceTypeTopic
		rr.ResourceName = t
		rr.ConfigNames = topicConfigNames
		req.Resources = append(req.Resources, rr)
	}
	var errs []error
	for _, shard := range h.cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			errs = append(errs, fmt.Errorf("describe configs: %w", shard.Err))
			continue
		}
		for _, r := range shard.Resp.(*kmsg.DescribeConfigsResponse).Resources {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("describe configs of %s: %w", r.ResourceName, err))
				continue
			}
			out[r.ResourceName] = topicConfigOf(r.Configs)
		}
	}
	return out, errors.Join(errs...)
}

func topicConfigOf(configs []kmsg.DescribeConfigsResponseResourceConfig) topicConfig {
	var tc topicConfig
	deletes := true // Kafka's default cleanup.policy is delete
	for _, c := range configs {
		if c.Value == nil {
			continue
		}
		v := *c.Value
		switch c.Name {
		case "min.insync.replicas":
			if n, err := strconv.Atoi(v); err == nil {
				tc.minISR, tc.hasMinISR = n, true
			}
		case "retention.ms":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				tc.retentionMs, tc.hasRetentionMs = n, true
			}
		case "retention.bytes":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				tc.retentionBytes, tc.hasRetentionBytes = n, true
			}
		case "cleanup.policy":
			deletes = slices.Contains(strings.Split(strings.ReplaceAll(v, " ", ""), ","), "delete")
		}
	}
	if !deletes {
		tc.retentionMs, tc.hasRetentionMs = -1, true
		tc.retentionBytes, tc.hasRetentionBytes = -1, true
	}
	tc.retentionMs = max(tc.retentionMs, -1)
	tc.retentionBytes = max(tc.retentionBytes, -1)
	return tc
}

// readOffsetsTopicDefaults reads, from one broker, the replication factor
// and min.insync.replicas __consumer_offsets would be created with.
func (h *Poller) readOffsetsTopicDefaults(ctx context.Context, md kadm.Metadata) (rf, minISR int, ok bool) {
	if len(md.Brokers) == 0 {
		return 0, 0, false
	}
	rcs, err := h.adm.DescribeBrokerConfigs(ctx, md.Brokers[0].NodeID)
	if err != nil {
		return 0, 0, false
	}
	rf, minISR = -1, -1
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			n, err := strconv.Atoi(*c.Value)
			if err != nil {
				continue
			}
			switch c.Key {
			case "offsets.topic.replication.factor":
				rf = n
			case "min.insync.replicas":
				minISR = n
			}
		}
	}
	return rf, minISR, rf >= 0 && minISR >= 0
}
