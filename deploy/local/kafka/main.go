// Command kafka runs the local stack's Kafka-protocol cluster: three kfake
// brokers on fixed loopback ports with the topic the exporter reads, and a
// small HTTP control endpoint that stops and restarts a broker.
//
// kfake does not replicate, so a stopped broker would simply vanish from every
// replica list and nothing would look under-replicated. While a broker is
// stopped, Metadata answers are therefore rewritten the way a real cluster
// reports a dead broker: it stays in each partition's replica list, leaves the
// ISR, and is listed as an offline replica; leaders are the live brokers. The
// rewrite applies to every client (the consumer ignores ISR; the health
// poller is what reads it).
//
//	POST /brokers/{id}/stop    remove broker id (0, 1 or 2) from the cluster
//	POST /brokers/{id}/start   bring it back on its port
//	POST /partitions/{p}/shrink-isr   report partition p's ISR as its leader alone
//	POST /partitions/{p}/restore-isr  report it in sync again
//	GET  /status               live and stopped brokers, shrunk partitions, as JSON
//
// A shrunk ISR is only reported (kfake does not replicate): the partition
// keeps its leader and every replica, and only the followers leave the ISR,
// as when they fall behind on a real cluster. With min.insync.replicas 2 the
// partition is then under its minimum ISR.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const clusterID = "accesslog-local"

func main() {
	ports := flag.String("ports", "29092,29093,29094", "comma-separated broker ports on 127.0.0.1; broker i gets the i-th")
	control := flag.String("control", "127.0.0.1:29099", "listen address of the control endpoint")
	topic := flag.String("topic", "nginxlog", "topic to create")
	partitions := flag.Int("partitions", 6, "partitions of the topic")
	flag.Parse()

	var ps []int
	for _, s := range strings.Split(*ports, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			log.Fatalf("kafka: bad port %q", s)
		}
		ps = append(ps, p)
	}
	c, err := kfake.NewCluster(
		kfake.Ports(ps...),
		kfake.ClusterID(clusterID),
		kfake.SeedTopics(int32(*partitions), *topic),
		kfake.BrokerConfigs(map[string]string{"min.insync.replicas": "2"}),
	)
	if err != nil {
		log.Fatalf("kafka: %v", err)
	}
	defer c.Close()
	k := &cluster{c: c, topic: *topic, ports: ps, partitions: int32(*partitions), stopped: map[int32]bool{}, shrunk: map[int32]bool{}}
	c.ControlKey(int16(kmsg.Metadata), k.rewriteMetadata)
	c.ControlKey(int16(kmsg.OffsetForLeaderEpoch), k.offsetForLeaderEpoch)

	ln, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatalf("kafka: control: %v", err)
	}
	srv := &http.Server{Handler: k.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("kafka: control: %v", err)
		}
	}()
	log.Printf("kafka: brokers %s, topic %s (%d partitions), control http://%s", strings.Join(c.ListenAddrs(), ","), *topic, *partitions, ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}

type cluster struct {
	c          *kfake.Cluster
	topic      string
	ports      []int
	partitions int32

	// op serialises stop and start. mu guards stopped and is never held
	// while calling into kfake: the Metadata control runs on kfake's loop,
	// and RemoveNode/AddNode wait for that loop.
	op      sync.Mutex
	mu      sync.Mutex
	stopped map[int32]bool
	shrunk  map[int32]bool // partitions whose ISR is reported as the leader alone
}

func (k *cluster) isStopped(id int32) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopped[id]
}

func (k *cluster) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) { k.writeStatus(w) })
	mux.HandleFunc("POST /brokers/{id}/stop", func(w http.ResponseWriter, r *http.Request) {
		id, ok := k.node(w, r)
		if !ok {
			return
		}
		if err := k.stop(id); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		k.writeStatus(w)
	})
	mux.HandleFunc("POST /brokers/{id}/start", func(w http.ResponseWriter, r *http.Request) {
		id, ok := k.node(w, r)
		if !ok {
			return
		}
		if err := k.start(id); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		k.writeStatus(w)
	})
	mux.HandleFunc("POST /partitions/{p}/shrink-isr", func(w http.ResponseWriter, r *http.Request) { k.setShrunk(w, r, true) })
	mux.HandleFunc("POST /partitions/{p}/restore-isr", func(w http.ResponseWriter, r *http.Request) { k.setShrunk(w, r, false) })
	return mux
}

func (k *cluster) setShrunk(w http.ResponseWriter, r *http.Request, shrunk bool) {
	p, err := strconv.Atoi(r.PathValue("p"))
	if err != nil || p < 0 || int32(p) >= k.partitions {
		http.Error(w, fmt.Sprintf("no partition %q: want 0..%d", r.PathValue("p"), k.partitions-1), http.StatusNotFound)
		return
	}
	k.mu.Lock()
	if shrunk {
		if k.shrunk == nil {
			k.shrunk = map[int32]bool{}
		}
		k.shrunk[int32(p)] = true
	} else {
		delete(k.shrunk, int32(p))
	}
	k.mu.Unlock()
	log.Printf("kafka: partition %d ISR shrunk: %v", p, shrunk)
	k.writeStatus(w)
}

func (k *cluster) node(w http.ResponseWriter, r *http.Request) (int32, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil || id < 0 || id >= len(k.ports) {
		http.Error(w, fmt.Sprintf("no broker %q: want 0..%d", r.PathValue("id"), len(k.ports)-1), http.StatusNotFound)
		return 0, false
	}
	return int32(id), true
}

func (k *cluster) stop(id int32) error {
	k.op.Lock()
	defer k.op.Unlock()
	if k.isStopped(id) {
		return fmt.Errorf("broker %d is already stopped", id)
	}
	// Mark first: from the moment the node is gone, Metadata must report it
	// as an offline replica.
	k.mu.Lock()
	k.stopped[id] = true
	k.mu.Unlock()
	if err := k.c.RemoveNode(id); err != nil {
		k.mu.Lock()
		delete(k.stopped, id)
		k.mu.Unlock()
		return err
	}
	log.Printf("kafka: broker %d stopped", id)
	return nil
}

func (k *cluster) start(id int32) error {
	k.op.Lock()
	defer k.op.Unlock()
	if !k.isStopped(id) {
		return fmt.Errorf("broker %d is not stopped", id)
	}
	if _, _, err := k.c.AddNode(id, k.ports[id]); err != nil {
		return err
	}
	k.mu.Lock()
	delete(k.stopped, id)
	k.mu.Unlock()
	log.Printf("kafka: broker %d started", id)
	return nil
}

func (k *cluster) writeStatus(w http.ResponseWriter) {
	k.mu.Lock()
	var live, stopped []int32
	for i := range k.ports {
		if k.stopped[int32(i)] {
			stopped = append(stopped, int32(i))
		} else {
			live = append(live, int32(i))
		}
	}
	shrunk := slices.Sorted(maps.Keys(k.shrunk))
	k.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"live": live, "stopped": stopped, "shrunk_isr": shrunk, "ports": k.ports, "topic": k.topic})
}

// rewriteMetadata answers Metadata while a broker is stopped or an ISR is
// shrunk (see the package comment); otherwise it lets kfake answer.
func (k *cluster) rewriteMetadata(kreq kmsg.Request) (kmsg.Response, error, bool) {
	k.mu.Lock()
	stopped := maps.Clone(k.stopped)
	shrunk := maps.Clone(k.shrunk)
	k.mu.Unlock()
	if len(stopped) == 0 && len(shrunk) == 0 {
		return nil, nil, false
	}
	k.c.KeepControl()
	req := kreq.(*kmsg.MetadataRequest)
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = req.Version
	cid := clusterID
	resp.ClusterID = &cid

	var all, live, offline []int32
	for i, p := range k.ports {
		id := int32(i)
		all = append(all, id)
		if stopped[id] {
			offline = append(offline, id)
			continue
		}
		live = append(live, id)
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = id, "127.0.0.1", int32(p)
		resp.Brokers = append(resp.Brokers, b)
	}
	resp.ControllerID = live[0]

	want := []string{k.topic} // a nil topic list asks for every topic
	if req.Topics != nil {
		want = want[:0]
		for _, t := range req.Topics {
			if t.Topic != nil {
				want = append(want, *t.Topic)
			} else {
				want = append(want, "") // asked by topic ID: only ours exists
			}
		}
	}
	info := k.c.TopicInfo(k.topic)
	for _, name := range want {
		t := kmsg.NewMetadataResponseTopic()
		if name == "" {
			name = k.topic
		}
		n := name
		t.Topic = &n
		if name != k.topic || info == nil {
			t.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, t)
			continue
		}
		t.TopicID = info.TopicID
		for _, pi := range k.c.PartitionInfos(k.topic) {
			p := kmsg.NewMetadataResponseTopicPartition()
			p.Partition = pi.Partition
			p.Leader = pi.Leader
			p.LeaderEpoch = pi.Epoch
			p.Replicas = append([]int32{pi.Leader}, slices.DeleteFunc(slices.Clone(all), func(id int32) bool { return id == pi.Leader })...)
			p.ISR = slices.DeleteFunc(slices.Clone(p.Replicas), func(id int32) bool { return slices.Contains(offline, id) })
			if shrunk[pi.Partition] {
				p.ISR = []int32{pi.Leader}
			}
			p.OfflineReplicas = slices.Clone(offline)
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil, true
}

// offsetForLeaderEpoch answers that every past epoch ended at the high
// watermark. kfake never truncates a partition, so no consumer can have read
// past the end of its epoch; but after RemoveNode/AddNode (which bump every
// partition's leader epoch) kfake's own answer can be offset 0, and franz-go
// then reports lost records and rewinds the consumer to the start of the
// partition, re-reading everything: an artefact of the fake, not a fault a
// real cluster produces when a broker stops.
func (k *cluster) offsetForLeaderEpoch(kreq kmsg.Request) (kmsg.Response, error, bool) {
	k.c.KeepControl()
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	node := k.c.CurrentNode()
	var infos []*kfake.PartitionInfo
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		if rt.Topic == k.topic && infos == nil {
			infos = k.c.PartitionInfos(k.topic)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			var pi *kfake.PartitionInfo
			if rt.Topic == k.topic && rp.Partition >= 0 && int(rp.Partition) < len(infos) {
				pi = infos[rp.Partition]
			}
			switch {
			case pi == nil:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case pi.Leader != node:
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			case rp.CurrentLeaderEpoch != -1 && rp.CurrentLeaderEpoch < pi.Epoch:
				sp.ErrorCode = kerr.FencedLeaderEpoch.Code
			case rp.CurrentLeaderEpoch > pi.Epoch:
				sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
			case rp.LeaderEpoch > pi.Epoch:
				sp.LeaderEpoch, sp.EndOffset = -1, -1
			default:
				sp.LeaderEpoch, sp.EndOffset = rp.LeaderEpoch, pi.HighWatermark
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil, true
}

func init() { log.SetOutput(os.Stderr); log.SetFlags(log.LstdFlags | log.Lmicroseconds) }
