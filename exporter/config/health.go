package config

import "time"

// Health is the Kafka cluster health poller: lag, ISR, offline partitions,
// brokers. It polls in the background; a scrape returns the last result.
type Health struct {
	Enabled bool `yaml:"enabled"`
	// Interval between polls; a scrape always returns the last poll's result.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one poll; a poll that runs out counts as failed and the
	// cluster is reported down. At most Interval.
	Timeout time.Duration `yaml:"timeout"`
	// Topics and Groups are regular expressions a whole name must match;
	// the *Exclude ones drop names they match ("" drops none).
	Topics        string `yaml:"topics"`
	TopicsExclude string `yaml:"topics_exclude"`
	Groups        string `yaml:"groups"`
	GroupsExclude string `yaml:"groups_exclude"`
	// InternalTopics adds __consumer_offsets and __transaction_state to the
	// per-partition series; their durability is checked either way.
	InternalTopics bool `yaml:"internal_topics"`
	// StaleAfter is how many polls in a row may fail before the last good
	// result is withdrawn, so that gauges disappear instead of freezing.
	StaleAfter int `yaml:"stale_after"`
	// LagSecondsPartitions caps the lagging partitions whose oldest
	// unconsumed record is fetched (one small fetch each) to report lag in
	// seconds; 0 turns lag seconds off.
	LagSecondsPartitions int `yaml:"lag_seconds_partitions"`
	// ExpectedBrokers, when > 0, is exported so that an alert can compare
	// kafka_brokers with it; 0 leaves it out.
	ExpectedBrokers int `yaml:"expected_brokers"`
}

func defaultHealth() Health {
	return Health{
		Enabled:              true,
		Interval:             30 * time.Second,
		Timeout:              20 * time.Second,
		Topics:               ".*",
		Groups:               ".*",
		StaleAfter:           3,
		LagSecondsPartitions: 1000,
	}
}

func (v *validator) health(h *Health) {
	if !h.Enabled {
		return
	}
	v.interval("health.interval", h.Interval, minPollInterval, maxPollInterval)
	switch {
	case h.Timeout < minTimeout:
		v.errorf("health.timeout", "must be at least %s, got %v", minTimeout, h.Timeout)
	case h.Interval > 0 && h.Timeout > h.Interval:
		v.errorf("health.timeout", "%v is longer than health.interval %v: polls would overlap", h.Timeout, h.Interval)
	}
	v.regexp("health.topics", h.Topics)
	v.regexp("health.topics_exclude", h.TopicsExclude)
	v.regexp("health.groups", h.Groups)
	v.regexp("health.groups_exclude", h.GroupsExclude)
	v.count("health.stale_after", h.StaleAfter, 1, maxStaleAfter, "")
	v.count("health.lag_seconds_partitions", h.LagSecondsPartitions, 0, maxLagPartitions, "0: off")
	v.count("health.expected_brokers", h.ExpectedBrokers, 0, maxBrokers, "0: not checked")
}
