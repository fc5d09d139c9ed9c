package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
)

// How main wires the HTTP side: exporter-toolkit's flags, our own registry,
// the consumer's readiness, and Listen before Run so the real address (":0"
// picks one) can be printed.
func Example() {
	app := kingpin.New("accesslog-exporter", "")
	webFlags := kingpinflag.AddFlags(app, ":9717")
	pprof := app.Flag("web.enable-pprof", "Serve /debug/pprof/.").Bool()
	kingpin.MustParse(app.Parse(os.Args[1:]))

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	reg := prometheus.NewRegistry()
	ready := server.ReadinessFunc(func() (bool, string) {
		return false, "not ready: waiting for group join (brokers: 127.0.0.1:9092)"
	})
	srv := server.New(server.Config{Flags: webFlags, EnablePprof: *pprof, Version: "dev"}, reg, ready, logger)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := srv.Listen(ctx); err != nil {
		logger.Error("listen", "err", err)
		os.Exit(1)
	}
	fmt.Printf("metrics at http://%s/metrics\n", srv.Addr())
	if err := srv.Run(ctx); err != nil {
		logger.Error("http server", "err", err)
		os.Exit(1)
	}
}
