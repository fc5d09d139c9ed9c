// Command upstream is the local stack's backend behind nginx's proxy_pass:
// it answers every request after a configurable latency, failing a
// configurable share of them with a configurable status, so that upstream
// times, proxy_next_upstream retries and 5xx in the access log are real.
// It listens on several addresses (one nginx upstream server each) sharing
// one behaviour, changed at runtime over a control endpoint:
//
//	GET  /config   the behaviour, as JSON
//	POST /config   change it: form or query values latency=50ms,
//	               error_rate=0.2 (0..1), error_status=503; missing keys keep
//	               their value
//
// A request may also ask for its own answer: ?status=503 answers 503 (from
// every server, so nginx's retry fails too), whatever the behaviour.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type behaviour struct {
	Latency     string  `json:"latency"`
	ErrorRate   float64 `json:"error_rate"`
	ErrorStatus int     `json:"error_status"`
	latency     time.Duration
}

type upstream struct {
	mu sync.Mutex
	b  behaviour
}

func (u *upstream) get() behaviour {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.b
}

func (u *upstream) set(r *http.Request) (behaviour, error) {
	if err := r.ParseForm(); err != nil {
		return behaviour{}, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	b := u.b
	if v := r.Form.Get("latency"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return b, fmt.Errorf("latency: want a duration such as 20ms, got %q", v)
		}
		b.latency, b.Latency = d, d.String()
	}
	if v := r.Form.Get("error_rate"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return b, fmt.Errorf("error_rate: want a number in [0, 1], got %q", v)
		}
		b.ErrorRate = f
	}
	if v := r.Form.Get("error_status"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return b, fmt.Errorf("error_status: want an HTTP status, got %q", v)
		}
		b.ErrorStatus = n
	}
	u.b = b
	return b, nil
}

func (u *upstream) serve(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := u.get()
		if b.latency > 0 {
			select {
			case <-time.After(b.latency):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Upstream", name)
		if v := r.URL.Query().Get("status"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 200 && n <= 599 {
				w.WriteHeader(n)
				fmt.Fprintf(w, "%s: asked for %d\n", name, n)
				return
			}
		}
		if b.ErrorRate > 0 && rand.Float64() < b.ErrorRate {
			w.WriteHeader(b.ErrorStatus)
			fmt.Fprintf(w, "%s: injected %d\n", name, b.ErrorStatus)
			return
		}
		fmt.Fprintf(w, "%s: %s %s ok\n", name, r.Method, r.URL.Path)
	})
}

func (u *upstream) control() http.Handler {
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, b behaviour) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(b)
	}
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, _ *http.Request) { write(w, u.get()) })
	mux.HandleFunc("POST /config", func(w http.ResponseWriter, r *http.Request) {
		b, err := u.set(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		log.Printf("upstream: latency=%s error_rate=%g error_status=%d", b.Latency, b.ErrorRate, b.ErrorStatus)
		write(w, b)
	})
	return mux
}

func main() {
	listen := flag.String("listen", "127.0.0.1:28081,127.0.0.1:28082", "comma-separated listen addresses, one per upstream server")
	control := flag.String("control", "127.0.0.1:28089", "listen address of the control endpoint")
	latency := flag.Duration("latency", 5*time.Millisecond, "initial latency of every answer")
	errorRate := flag.Float64("error-rate", 0, "initial share of answers that fail, 0..1")
	errorStatus := flag.Int("error-status", 500, "initial status of failed answers")
	flag.Parse()
	u := &upstream{b: behaviour{Latency: latency.String(), latency: *latency, ErrorRate: *errorRate, ErrorStatus: *errorStatus}}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var srvs []*http.Server
	start := func(addr string, h http.Handler) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatalf("upstream: %v", err)
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		srvs = append(srvs, s)
		go func() {
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Fatalf("upstream: %v", err)
			}
		}()
	}
	for _, a := range strings.Split(*listen, ",") {
		start(a, u.serve(a))
	}
	start(*control, u.control())
	log.Printf("upstream: serving %s, control http://%s/config", *listen, *control)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, s := range srvs {
		_ = s.Shutdown(sctx)
	}
}
