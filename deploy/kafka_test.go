// Package deploy holds no code: its tests check that what deploy/ ships
// works together and with the exporter (configs it loads, formats it
// parses, invariants the seed system broke), and run what can run here
// for real (nginx -t, keepalived failover between network namespaces).
package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// parseProperties reads a Java .properties file as Kafka does for the
// simple forms used in server.properties: key=value or key: value, # and !
// comments, and a trailing backslash continuing a line. A key given twice
// is an error: Kafka silently keeps the last, which hides mistakes.
func parseProperties(data string) (map[string]string, error) {
	props := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(data))
	var cont strings.Builder
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if cont.Len() == 0 && (line == "" || line[0] == '#' || line[0] == '!') {
			continue
		}
		if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
			cont.WriteString(strings.TrimSuffix(line, `\`))
			continue
		}
		cont.WriteString(line)
		line = cont.String()
		cont.Reset()
		i := strings.IndexAny(line, "=:")
		if i < 0 {
			return nil, fmt.Errorf("line %d: no '=' in %q", n, line)
		}
		k, v := strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		if _, dup := props[k]; dup {
			return nil, fmt.Errorf("line %d: %s set twice", n, k)
		}
		props[k] = v
	}
	return props, sc.Err()
}

// Kafka's own defaults for what a server.properties may leave out.
var kafkaDefaults = map[string]string{
	"offsets.topic.replication.factor":         "3",
	"transaction.state.log.replication.factor": "3",
	"transaction.state.log.min.isr":            "2",
	"default.replication.factor":               "1",
	"min.insync.replicas":                      "1",
	"unclean.leader.election.enable":           "false",
}

// The exporter's durability rule (accesslog_exporter_kafka_topic_durability_risk
// in exporter/kafka): a topic that must not lose data needs at least this
// many replicas, and a write must reach at least this many of them.
const (
	safeReplicationFactor = 3
	safeMinISR            = 2
)

// kafkaDurabilityProblems returns what in a broker config can lose or block
// lines when one broker is lost: the invariants of issue 9, one message per
// violation, empty when there is none. The first two checks are the ones the
// exporter's health poller applies to a live cluster, so a config flagged
// here would show up as accesslog_exporter_kafka_topic_durability_risk 1
// (__consumer_offsets and the log topic) once deployed.
func kafkaDurabilityProblems(props map[string]string) []string {
	get := func(k string) (string, bool) {
		if v, ok := props[k]; ok {
			return v, true
		}
		return kafkaDefaults[k], false
	}
	var problems []string
	atLeast := func(k string, want int, why string) {
		v, set := get(k)
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s=%q: not a number", k, v))
		case n < want:
			src := ""
			if !set {
				src = " (Kafka's default, not set)"
			}
			problems = append(problems, fmt.Sprintf("%s=%d%s, want >= %d: %s", k, n, src, want, why))
		}
	}
	atLeast("offsets.topic.replication.factor", safeReplicationFactor,
		"__consumer_offsets would lose the groups' committed offsets with one broker (durability_risk{topic=\"__consumer_offsets\"})")
	atLeast("min.insync.replicas", safeMinISR,
		"an acks=-1 write could be acknowledged by one replica only and lost with it (durability_risk on every topic)")
	atLeast("default.replication.factor", safeReplicationFactor,
		"a topic created without an explicit factor would have fewer than 3 replicas")
	atLeast("transaction.state.log.replication.factor", safeReplicationFactor,
		"__transaction_state would not survive a broker")
	atLeast("transaction.state.log.min.isr", safeMinISR,
		"__transaction_state writes could be acknowledged by one replica")
	if v, _ := get("unclean.leader.election.enable"); v != "false" {
		problems = append(problems, fmt.Sprintf("unclean.leader.election.enable=%s, want false: an out-of-sync replica could become leader and truncate acknowledged lines", v))
	}
	if rf, err := strconv.Atoi(props["default.replication.factor"]); err == nil {
		if mi, err := strconv.Atoi(props["min.insync.replicas"]); err == nil && mi >= rf {
			problems = append(problems, fmt.Sprintf("min.insync.replicas=%d >= default.replication.factor=%d: one broker down would stop every write", mi, rf))
		}
	}
	return problems
}

func renderServerProperties(t *testing.T, node int) map[string]string {
	t.Helper()
	out, err := exec.Command("bash", "kafka/render-server-properties.sh", strconv.Itoa(node),
		"kafka-1.example.net", "kafka-2.example.net", "kafka-3.example.net").Output()
	if err != nil {
		t.Fatalf("render-server-properties.sh %d: %v", node, stderrOf(err))
	}
	if m := regexp.MustCompile(`\{\{[A-Z_]+\}\}`).Find(out); m != nil {
		t.Fatalf("node %d: placeholder %s left unrendered", node, m)
	}
	props, err := parseProperties(string(out))
	if err != nil {
		t.Fatalf("node %d: %v", node, err)
	}
	return props
}

func TestKafkaServerPropertiesHA(t *testing.T) {
	voters := map[string]bool{}
	for node := 1; node <= 3; node++ {
		props := renderServerProperties(t, node)
		for _, p := range kafkaDurabilityProblems(props) {
			t.Errorf("node %d: %s", node, p)
		}
		want := map[string]string{
			"process.roles":                            "broker,controller",
			"node.id":                                  strconv.Itoa(node),
			"controller.listener.names":                "CONTROLLER",
			"offsets.topic.replication.factor":         "3",
			"transaction.state.log.replication.factor": "3",
			"transaction.state.log.min.isr":            "2",
			"default.replication.factor":               "3",
			"min.insync.replicas":                      "2",
			"unclean.leader.election.enable":           "false",
			"auto.create.topics.enable":                "false",
			"advertised.listeners":                     fmt.Sprintf("PLAINTEXT://kafka-%d.example.net:9092", node),
		}
		for k, v := range want {
			if props[k] != v {
				t.Errorf("node %d: %s=%q, want %q", node, k, props[k], v)
			}
		}
		voters[props["controller.quorum.voters"]] = true
		// Three distinct voters, this node among them: a quorum that
		// survives one node.
		ids := map[string]bool{}
		for _, v := range strings.Split(props["controller.quorum.voters"], ",") {
			id, _, ok := strings.Cut(v, "@")
			if !ok {
				t.Errorf("node %d: voter %q is not id@host:port", node, v)
			}
			ids[id] = true
		}
		if len(ids) != 3 || !ids[strconv.Itoa(node)] {
			t.Errorf("node %d: controller.quorum.voters=%q: want 3 distinct voters including this node", node, props["controller.quorum.voters"])
		}
	}
	if len(voters) != 1 {
		t.Errorf("nodes disagree on controller.quorum.voters: %v", voters)
	}
}

func TestKafkaSeedConfigIsFlagged(t *testing.T) {
	data, err := os.ReadFile("testdata/seed-server.properties")
	if err != nil {
		t.Fatal(err)
	}
	props, err := parseProperties(string(data))
	if err != nil {
		t.Fatal(err)
	}
	problems := kafkaDurabilityProblems(props)
	for _, want := range []string{
		"offsets.topic.replication.factor=1",
		"transaction.state.log.replication.factor=1",
		"transaction.state.log.min.isr=1",
		"min.insync.replicas=1 (Kafka's default, not set)",
		"default.replication.factor=1 (Kafka's default, not set)",
	} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("seed config: no problem reported for %s; got:\n%s", want, strings.Join(problems, "\n"))
		}
	}
	// The one the exporter's health alert is about: the offsets topic.
	if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, `durability_risk{topic="__consumer_offsets"}`) }) {
		t.Errorf("seed config: __consumer_offsets durability risk not reported")
	}
}

func TestParseProperties(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     map[string]string
		err      bool
	}{
		{"plain", "a=1\nb = 2\n", map[string]string{"a": "1", "b": "2"}, false},
		{"colon and comments", "# x\n! y\na: 1\n", map[string]string{"a": "1"}, false},
		{"continuation", "a=1,\\\n  2\n", map[string]string{"a": "1,2"}, false},
		{"duplicate", "a=1\na=2\n", nil, true},
		{"no separator", "a\n", nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProperties(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.err && fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// shellDefault reads VAR=${VAR:-value} or VAR=value from a script.
func shellDefault(t *testing.T, script, name string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + name + `=(?:\$\{` + name + `:-([^}]*)\}|(\S+))$`)
	m := re.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("%s: not set in the script", name)
	}
	return m[1] + m[2]
}

// The topic script creates what the brokers promise: RF 3, min ISR 2, and
// enough partitions for the most exporter replicas Kubernetes may run.
func TestKafkaCreateTopics(t *testing.T) {
	data, err := os.ReadFile("kafka/create-topics.sh")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if rf := shellDefault(t, s, "REPLICATION_FACTOR"); rf != "3" {
		t.Errorf("REPLICATION_FACTOR=%s, want 3", rf)
	}
	if mi := shellDefault(t, s, "MIN_INSYNC_REPLICAS"); mi != "2" {
		t.Errorf("MIN_INSYNC_REPLICAS=%s, want 2", mi)
	}
	for _, want := range []string{"--replication-factor $REPLICATION_FACTOR", "min.insync.replicas=$MIN_INSYNC_REPLICAS", "unclean.leader.election.enable=false", `retention.ms="$RETENTION_MS"`} {
		if !strings.Contains(s, want) {
			t.Errorf("create-topics.sh does not pass %s", want)
		}
	}
	if topic := shellDefault(t, s, "TOPIC"); topic != "nginxlog" {
		t.Errorf("TOPIC=%s, want nginxlog (the exporter's kafka.topics)", topic)
	}
	partitions, err := strconv.Atoi(shellDefault(t, s, "PARTITIONS"))
	if err != nil {
		t.Fatal(err)
	}
	if max := kedaMaxReplicas(t); partitions < max {
		t.Errorf("PARTITIONS=%d < KEDA maxReplicaCount %d: replicas beyond the partition count would idle", partitions, max)
	}
}

// Every shipped shell script at least parses.
func TestShellScriptsParse(t *testing.T) {
	scripts, _ := filepath.Glob("*/*.sh")
	more, _ := filepath.Glob("*/*/*.sh")
	scripts = append(scripts, more...)
	scripts = append(scripts, "../scripts/install-deploy-tools.sh", "../scripts/apt-ensure.sh")
	if len(scripts) < 5 {
		t.Fatalf("found only %v", scripts)
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		if fi, err := os.Stat(s); err == nil && fi.Mode()&0o111 == 0 {
			t.Errorf("%s is not executable", s)
		}
	}
}

func stderrOf(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%v: %s", err, ee.Stderr)
	}
	return err
}
