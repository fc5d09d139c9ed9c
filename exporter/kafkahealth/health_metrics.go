package kafkahealth

import "github.com/prometheus/client_golang/prometheus"

// The kafka_* names, labels and help texts are danielqsj/kafka_exporter's,
// so that its dashboards and alerts work unchanged; the golden file
// testdata/health_kafka_exporter_names.txt pins them. What it lacks is under
// accesslog_exporter_kafka_.
var (
	descBrokers = prometheus.NewDesc("kafka_brokers",
		"Number of Brokers in the Kafka Cluster.", nil, nil)
	descBrokerInfo = prometheus.NewDesc("kafka_broker_info",
		"Information about the Kafka Broker.", []string{"id", "address"}, nil)
	descTopicPartitions = prometheus.NewDesc("kafka_topic_partitions",
		"Number of partitions for this Topic", []string{"topic"}, nil)
	descTopicCurrentOffset = prometheus.NewDesc("kafka_topic_partition_current_offset",
		"Current Offset of a Broker at Topic/Partition", []string{"topic", "partition"}, nil)
	descTopicOldestOffset = prometheus.NewDesc("kafka_topic_partition_oldest_offset",
		"Oldest Offset of a Broker at Topic/Partition", []string{"topic", "partition"}, nil)
	descPartitionLeader = prometheus.NewDesc("kafka_topic_partition_leader",
		"Leader Broker ID of this Topic/Partition", []string{"topic", "partition"}, nil)
	descPartitionReplicas = prometheus.NewDesc("kafka_topic_partition_replicas",
		"Number of Replicas for this Topic/Partition", []string{"topic", "partition"}, nil)
	descPartitionISR = prometheus.NewDesc("kafka_topic_partition_in_sync_replica",
		"Number of In-Sync Replicas for this Topic/Partition", []string{"topic", "partition"}, nil)
	descPartitionPreferred = prometheus.NewDesc("kafka_topic_partition_leader_is_preferred",
		"1 if Topic/Partition is using the Preferred Broker", []string{"topic", "partition"}, nil)
	descPartitionUnderReplicated = prometheus.NewDesc("kafka_topic_partition_under_replicated_partition",
		"1 if Topic/Partition is under Replicated", []string{"topic", "partition"}, nil)
	descGroupCurrentOffset = prometheus.NewDesc("kafka_consumergroup_current_offset",
		"Current Offset of a ConsumerGroup at Topic/Partition", []string{"consumergroup", "topic", "partition"}, nil)
	descGroupCurrentOffsetSum = prometheus.NewDesc("kafka_consumergroup_current_offset_sum",
		"Current Offset of a ConsumerGroup at Topic for all partitions", []string{"consumergroup", "topic"}, nil)
	descGroupLag = prometheus.NewDesc("kafka_consumergroup_lag",
		"Current Approximate Lag of a ConsumerGroup at Topic/Partition", []string{"consumergroup", "topic", "partition"}, nil)
	descGroupLagSum = prometheus.NewDesc("kafka_consumergroup_lag_sum",
		"Current Approximate Lag of a ConsumerGroup at Topic for all partitions", []string{"consumergroup", "topic"}, nil)
	descGroupMembers = prometheus.NewDesc("kafka_consumergroup_members",
		"Amount of members in a consumer group", []string{"consumergroup"}, nil)

	descOfflinePartitions = prometheus.NewDesc("accesslog_exporter_kafka_topic_offline_partitions",
		"Partitions of the topic with no leader (metadata reports no leader or LEADER_NOT_AVAILABLE): nothing can be written to or read from them.",
		[]string{"topic"}, nil)
	descUnderMinISRPartitions = prometheus.NewDesc("accesslog_exporter_kafka_topic_under_min_isr_partitions",
		"Partitions of the topic whose in-sync replicas are fewer than its min.insync.replicas: producers with acks=all fail there.",
		[]string{"topic"}, nil)
	descMinISR = prometheus.NewDesc("accesslog_exporter_kafka_topic_min_insync_replicas",
		"The topic's effective min.insync.replicas, as DescribeConfigs reports it.",
		[]string{"topic"}, nil)
	descRetentionSeconds = prometheus.NewDesc("accesslog_exporter_kafka_topic_retention_seconds",
		"The topic's effective retention.ms in seconds, as DescribeConfigs reports it: records older than this are deleted (a whole segment at a time, so they may live somewhat longer). -1 when unlimited (retention.ms -1, or a cleanup.policy without delete).",
		[]string{"topic"}, nil)
	descRetentionBytes = prometheus.NewDesc("accesslog_exporter_kafka_topic_retention_bytes",
		"The topic's effective retention.bytes: the size per partition beyond which its oldest segments are deleted. -1 when unlimited.",
		[]string{"topic"}, nil)
	descReplicationFactor = prometheus.NewDesc("accesslog_exporter_kafka_topic_replication_factor",
		"The topic's replication factor: the fewest replicas any of its partitions lists.",
		[]string{"topic"}, nil)
	descDurabilityRisk = prometheus.NewDesc("accesslog_exporter_kafka_topic_durability_risk",
		"1 if __consumer_offsets or a log topic has replication factor < 3 or min.insync.replicas < 2: one broker lost can lose or block data.",
		[]string{"topic"}, nil)
	descGroupLagSeconds = prometheus.NewDesc("accesslog_exporter_kafka_consumergroup_lag_seconds",
		"Age at poll time of the oldest record the group has not consumed (the record at its committed offset); 0 when there is no lag.",
		[]string{"consumergroup", "topic", "partition"}, nil)
	descGroupUncommitted = prometheus.NewDesc("accesslog_exporter_kafka_consumergroup_uncommitted_partitions",
		"Partitions of a topic the group consumes that have no committed offset (reported as -1 by kafka_consumergroup_lag and left out of lag_sum).",
		[]string{"consumergroup", "topic"}, nil)
	descBrokersExpected = prometheus.NewDesc("accesslog_exporter_kafka_brokers_expected",
		"Brokers the cluster should have (health.expected_brokers), to compare with kafka_brokers.", nil, nil)
)

// healthDescs are the descriptors of the poll's results.
var healthDescs = []*prometheus.Desc{
	descBrokers, descBrokerInfo, descTopicPartitions, descTopicCurrentOffset, descTopicOldestOffset,
	descPartitionLeader, descPartitionReplicas, descPartitionISR, descPartitionPreferred,
	descPartitionUnderReplicated, descGroupCurrentOffset, descGroupCurrentOffsetSum, descGroupLag,
	descGroupLagSum, descGroupMembers,
	descOfflinePartitions, descUnderMinISRPartitions, descMinISR, descReplicationFactor,
	descDurabilityRisk, descGroupLagSeconds, descGroupUncommitted, descRetentionSeconds, descRetentionBytes,
}
