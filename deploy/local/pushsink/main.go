// Command pushsink acknowledges every push at once (204) after reading its
// body, and counts requests and bytes. Throughput runs put it where the log
// store would be, so that what they measure is the exporter's own cost.
// -delay holds every answer that long, as a store's latency does, to see
// how much in flight the exporter needs to keep up with it.
//
//	GET /stats   requests and body bytes received, as JSON
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"sync/atomic"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:29101", "listen address")
	delay := flag.Duration("delay", 0, "how long each push waits before its answer")
	flag.Parse()
	var requests, bytes atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]int64{"requests": requests.Load(), "bytes": bytes.Load()})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		requests.Add(1)
		bytes.Add(n)
		time.Sleep(*delay)
		w.WriteHeader(http.StatusNoContent)
	})
	log.Fatal(http.ListenAndServe(*listen, mux))
}
