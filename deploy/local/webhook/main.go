// Command webhook records what Alertmanager sends: every alert of every
// notification is appended to a file as one JSON line, and served back.
//
//	POST /<anything>        an Alertmanager webhook notification (version 4)
//	GET  /alerts            every alert recorded, as a JSON array, oldest first;
//	                        ?alertname=X filters by that label
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// notification is the part of Alertmanager's webhook payload we keep.
type notification struct {
	Receiver string  `json:"receiver"`
	Status   string  `json:"status"`
	Alerts   []alert `json:"alerts"`
}

type alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Record is one line of the file.
type record struct {
	ReceivedAt time.Time `json:"received_at"`
	Receiver   string    `json:"receiver"`
	Path       string    `json:"path"`
	alert
}

type recorder struct {
	mu   sync.Mutex
	f    *os.File
	file string
}

func (rc *recorder) receive(w http.ResponseWriter, r *http.Request) {
	var n notification
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&n); err != nil {
		http.Error(w, "want an Alertmanager webhook payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now().UTC()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, a := range n.Alerts {
		line, _ := json.Marshal(record{ReceivedAt: now, Receiver: n.Receiver, Path: r.URL.Path, alert: a})
		if _, err := rc.f.Write(append(line, '\n')); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		log.Printf("webhook: %s %s %v", a.Status, a.Labels["alertname"], a.Labels)
	}
}

func (rc *recorder) list(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("alertname")
	rc.mu.Lock()
	f, err := os.Open(rc.file)
	rc.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	out := []json.RawMessage{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var rec record
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		if name == "" || rec.Labels["alertname"] == name {
			out = append(out, json.RawMessage(append([]byte(nil), sc.Bytes()...)))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:29195", "listen address")
	file := flag.String("file", "alerts.jsonl", "file the alerts are appended to")
	flag.Parse()
	f, err := os.OpenFile(*file, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatalf("webhook: %v", err)
	}
	defer f.Close()
	rc := &recorder{f: f, file: *file}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /alerts", rc.list)
	mux.HandleFunc("POST /", rc.receive)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("webhook: %v", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("webhook: %v", err)
		}
	}()
	log.Printf("webhook: receiving on http://%s/, alerts at http://%s/alerts, file %s", ln.Addr(), ln.Addr(), *file)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
}
