package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/kafkaclient"
)

// SeedGroup gives group to the committed offsets of from, when group has
// no committed offset at all: a deployment that ran with one group for
// every sink and now runs one per sink starts the new group where the old
// one stopped, neither at the earliest nor at the latest offset. It returns
// how many partition offsets it copied (0 when group had commits, or from
// had none). Call it before the member of group joins.
func SeedGroup(ctx context.Context, cfg config.Kafka, from, group string, extra ...kgo.Opt) (int, error) {
	copts, err := kafkaclient.Opts(cfg)
	if err != nil {
		return 0, err
	}
	copts = append(copts, extra...)
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return 0, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// A fresh client sends its first request to a random seed, and franz-go
	// does not move on from one that refuses the connection: with one of
	// three brokers down (a rolling restart) a third of the starts failed.
	// Try again, as the members' own clients do, within a bound.
	giveUp := time.Now().Add(seedRetryFor)
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
		n, err := seedOnce(ctx, adm, from, group)
		if err == nil || !transient(err) || time.Now().Add(backoff).After(giveUp) {
			return n, err
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(backoff):
		}
	}
}

// seedRetryFor bounds SeedGroup's retries of transient errors: long
// enough for a client to find a live broker or a coordinator to move,
// short enough that a start with every broker down fails and says why.
const seedRetryFor = 30 * time.Second

// transient errors may pass on another try: a refused or failed
// connection, or a retriable Kafka error (a coordinator moving).
func transient(err error) bool {
	var op *net.OpError
	return (errors.As(err, &op) && op.Op == "dial") || kerr.IsRetriable(err)
}

func seedOnce(ctx context.Context, adm *kadm.Client, from, group string) (int, error) {
	have, err := groupOffsets(ctx, adm, group)
	if err != nil || len(have) > 0 {
		return 0, err
	}
	offs, err := groupOffsets(ctx, adm, from)
	if err != nil {
		return 0, err
	}
	if len(offs) == 0 {
		return 0, nil
	}
	resp, err := adm.CommitOffsets(ctx, group, offs)
	if err == nil {
		err = resp.Error()
	}
	// A group with members refuses commits from outside: another replica
	// runs it already, and seeded it when it started.
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.RebalanceInProgress) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("kafka: seeding group %q from %q: %w", group, from, err)
	}
	n := 0
	offs.Each(func(kadm.Offset) { n++ })
	return n, nil
}

// groupOffsets are the committed offsets of group; none when the group
// does not exist.
func groupOffsets(ctx context.Context, adm *kadm.Client, group string) (kadm.Offsets, error) {
	rs, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = rs.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: offsets of group %q: %w", group, err)
	}
	out := kadm.Offsets{}
	rs.Each(func(r kadm.OffsetResponse) {
		if r.Err == nil && r.At >= 0 {
			out.Add(r.Offset)
		}
	})
	return out, nil
}
