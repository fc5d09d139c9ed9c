package kafkahealth

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type groupState struct {
	name    string
	members int
	topics  []groupTopic
}

// groupTopic is a topic a group consumes: one it has committed on or one
// assigned to a member. commits is by partition, -1 where none.
type groupTopic struct {
	topic   string
	commits []int64
}

// readGroups lists, describes and reads the committed offsets of the
// groups the filter keeps, limited to the reported topics. One group's
// failure leaves that group out and does not fail the poll.
func (h *Poller) readGroups(ctx context.Context, topics map[string]*topicState) ([]groupState, []pollErr) {
	var errs []pollErr
	listed, err := h.adm.ListGroups(ctx)
	if err != nil {
		errs = append(errs, pollErr{errKindGroups, err})
		if len(listed) == 0 {
			return nil, errs
		}
	}
	var names []string
	for name := range listed {
		if h.filter.group(name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil, errs
	}
	slices.Sort(names)
	described, err := h.adm.DescribeGroups(ctx, names...)
	if err != nil {
		errs = append(errs, pollErr{errKindGroup, err})
	}
	fetched := h.adm.FetchManyOffsets(ctx, names...)

	var out []groupState
	for _, name := range names {
		d, ok := described[name]
		if !ok {
			continue // its shard failed: counted above
		}
		if d.Err != nil {
			if !errors.Is(d.Err, kerr.GroupIDNotFound) {
				errs = append(errs, pollErr{errKindGroup, fmt.Errorf("describe group %s: %w", name, d.Err)})
			}
			continue
		}
		f, ok := fetched[name]
		if !ok || f.Err != nil {
			err := fmt.Errorf("offsets of group %s: not returned", name)
			if ok {
				err = fmt.Errorf("offsets of group %s: %w", name, f.Err)
			}
			errs = append(errs, pollErr{errKindGroup, err})
			continue
		}
		g := groupState{name: name, members: len(d.Members)}
		consumed := map[string]bool{}
		for t := range f.Fetched {
			consumed[t] = true
		}
		for t := range d.AssignedPartitions() {
			consumed[t] = true
		}
		for _, t := range sortedKeys(consumed) {
			ts := topics[t]
			if ts == nil {
				continue
			}
			gt := groupTopic{topic: t, commits: make([]int64, len(ts.parts))}
			for i := range gt.commits {
				gt.commits[i] = -1
			}
			for p, o := range f.Fetched[t] {
				if o.Err == nil && p >= 0 && int(p) < len(gt.commits) && o.At >= 0 {
					gt.commits[p] = o.At
				}
			}
			g.topics = append(g.topics, gt)
		}
		out = append(out, g)
	}
	return out, errs
}

// tpo is a partition and an offset in it.
type tpo struct {
	topic  string
	part   int32
	offset int64
}

// lagSecondsPartitionBytes bounds what one partition may return to the lag
// seconds fetch. A batch cut short still has its header, whose first
// timestamp is then used: older than the record at the committed offset by
// at most the batch's span, so lag seconds errs on the side of alarming.
const lagSecondsPartitionBytes = 16 << 10

// readLagSeconds reads the timestamp of the record at the committed offset
// of every lagging partition, the most lagging first and at most
// health.lag_seconds_partitions of them, and returns their age now. It
// reports how many lagging partitions the cap left out.
func (h *Poller) readLagSeconds(ctx context.Context, md kadm.Metadata, topics map[string]*topicState, groups []groupState) (map[tpo]float64, int, error) {
	if h.cfg.LagSecondsPartitions == 0 {
		return nil, 0, nil
	}
	lags := map[tpo]int64{}
	for _, g := range groups {
		for _, gt := range g.topics {
			parts := topics[gt.topic].parts
			for p, commit := range gt.commits {
				ps := parts[p]
				if commit < 0 || !ps.hasOffsets || ps.end <= commit {
					continue
				}
				k := tpo{gt.topic, int32(p), commit}
				lags[k] = max(lags[k], ps.end-commit)
			}
		}
	}
	cands := make([]tpo, 0, len(lags))
	for k := range lags {
		cands = append(cands, k)
	}
	slices.SortFunc(cands, func(a, b tpo) int {
		if c := cmp.Compare(lags[b], lags[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return cmp.Compare(a.part, b.part)
	})
	capped := 0
	if len(cands) > h.cfg.LagSecondsPartitions {
		capped = len(cands) - h.cfg.LagSecondsPartitions
		cands = cands[:h.cfg.LagSecondsPartitions]
	}
	if len(cands) == 0 {
		return nil, capped, nil
	}

	// A quarter of the poll's time: a slow fetch costs lag seconds, not
	// the whole poll.
	ctx, cancel := context.WithTimeout(ctx, max(h.cfg.Timeout/4, time.Second))
	defer cancel()
	byLeader := map[int32][]tpo{}
	for _, c := range cands {
		leader := topics[c.topic].parts[c.part].leader
		byLeader[leader] = append(byLeader[leader], c)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		ts   = map[tpo]int64{} // millis
	)
	dec := kgo.DefaultDecompressor()
	for leader, parts := range byLeader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := h.fetchTimestamps(ctx, leader, parts, md, topics, dec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			for k, v := range got {
				ts[k] = v
			}
		}()
	}
	wg.Wait()
	now := time.Now()
	out := make(map[tpo]float64, len(ts))
	for k, ms := range ts {
		out[k] = max(now.Sub(time.UnixMilli(ms)).Seconds(), 0)
	}
	return out, capped, errors.Join(errs...)
}

// fetchTimestamps fetches from one leader the first batch at each
// partition's offset and returns the timestamp of the record there.
func (h *Poller) fetchTimestamps(ctx context.Context, leader int32, parts []tpo, md kadm.Metadata, topics map[string]*topicState, dec kgo.Decompressor) (map[tpo]int64, error) {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 0
	req.MinBytes = 1
	req.MaxBytes = int32(min(len(parts)*lagSecondsPartitionBytes, 64<<20))
	req.SessionEpoch = -1 // a one-off fetch, no fetch session
	want := map[string]map[int32]tpo{}
	idx := map[string]int{}
	for _, c := range parts {
		fetchAt := c.offset
		if ps := topics[c.topic].parts[c.part]; ps.hasStartOff && ps.start > fetchAt {
			fetchAt = ps.start // retention deleted it: the oldest left is the oldest unconsumed
		}
		i, ok := idx[c.topic]
		if !ok {
			i = len(req.Topics)
			idx[c.topic] = i
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = c.topic
			rt.TopicID = md.Topics[c.topic].ID
			req.Topics = append(req.Topics, rt)
			want[c.topic] = map[int32]tpo{}
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = c.part
		rp.FetchOffset = fetchAt
		rp.PartitionMaxBytes = lagSecondsPartitionBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		want[c.topic][c.part] = tpo{c.topic, c.part, fetchAt}
	}
	kr, err := h.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("fetch from broker %d: %w", leader, err)
	}
	resp := kr.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, fmt.Errorf("fetch from broker %d: %w", leader, err)
	}
	byID := map[kadm.TopicID]string{}
	for name := range want {
		byID[md.Topics[name].ID] = name
	}
	out := map[tpo]int64{}
	var errs []error
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		name := rt.Topic
		if name == "" {
			name = byID[rt.TopicID]
		}
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			w, ok := want[name][rp.Partition]
			if !ok {
				continue
			}
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("fetch %s/%d at %d: %w", name, rp.Partition, w.offset, err))
				continue
			}
			if ms, ok := recordTimestamp(rp, name, w.offset, dec); ok {
				// Keyed by the committed offset the caller asked about.
				for _, c := range parts {
					if c.topic == name && c.part == rp.Partition {
						out[c] = ms
					}
				}
			}
		}
	}
	return out, errors.Join(errs...)
}

// recordTimestamp is the timestamp of the first record at or after offset
// in a fetched partition: exact when a whole batch came back, else the
// first timestamp of the cut batch's header.
func recordTimestamp(rp *kmsg.FetchResponseTopicPartition, topic string, offset int64, dec kgo.Decompressor) (int64, bool) {
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Topic: topic, Partition: rp.Partition, Offset: offset,
	}, rp, dec, nil)
	for _, r := range fp.Records {
		if r.Offset >= offset {
			return r.Timestamp.UnixMilli(), true
		}
	}
	// Record batch v2 header: baseOffset(8) length(4) leaderEpoch(4)
	// magic(1) crc(4) attributes(2) lastOffsetDelta(4) firstTimestamp(8)
	// maxTimestamp(8).
	b := rp.RecordBatches
	if len(b) < 43 || b[16] != 2 {
		return 0, false
	}
	attrs := binary.BigEndian.Uint16(b[21:23])
	if attrs&0x08 != 0 { // log append time: the broker's, in maxTimestamp
		return int64(binary.BigEndian.Uint64(b[35:43])), true
	}
	return int64(binary.BigEndian.Uint64(b[27:35])), true
}
