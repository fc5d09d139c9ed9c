// Command loggen writes realistic nginx access-log traffic, raw or wrapped as
// Filebeat 8 ships it, into Kafka or a file, at a set rate.
//
//	loggen --count 100000 --output access.log
//	loggen --envelope --rate 5000 --kafka.brokers 127.0.0.1:9092
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/loggen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "loggen: ") {
			err = fmt.Errorf("loggen: %w", err)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer, stderr io.Writer) error {
	app := kingpin.New("loggen", "Writes realistic nginx access-log lines into Kafka or a file.")
	app.UsageWriter(stderr).ErrorWriter(stderr)
	var (
		format    = app.Flag("format", "log_format of the lines: combined, main, main_timed or json.").Default("main_timed").Enum("combined", "main", "main_timed", "json")
		envelope  = app.Flag("envelope", "Wrap each line in a Filebeat 8 JSON event.").Bool()
		seed      = app.Flag("seed", "Seed of the traffic; the same seed gives the same lines (with --clock=simulated).").Default("1").Int64()
		rate      = app.Flag("rate", "Lines per second; 0 for as fast as possible.").Default("1000").Float64()
		count     = app.Flag("count", "Lines to write; 0 for no limit (until interrupted).").Default("0").Int64()
		malformed = app.Flag("malformed-ratio", "Share of malformed lines, 0 to 1.").Default("0").Float64()
		hosts     = app.Flag("hosts", "Comma-separated machine names: Filebeat host.name and the Kafka key.").Default("web-1,web-2").String()
		path      = app.Flag("file-path", "log.file.path of the Filebeat envelope.").Default("/var/log/nginx/access.log").String()
		clock     = app.Flag("clock", "Line times: wall (now) or simulated (from 2025-10-10T13:55:36Z, advancing at --rate, or 1000/s when --rate is 0).").Default("wall").Enum("wall", "simulated")
		output    = app.Flag("output", "File to write when no Kafka brokers are given; - for stdout.").Default("-").String()
		brokers   = app.Flag("kafka.brokers", "Comma-separated Kafka seed brokers; when set, lines go to Kafka.").String()
		topic     = app.Flag("kafka.topic", "Kafka topic.").Default("nginxlog").String()
	)
	if _, err := app.Parse(args); err != nil {
		return err
	}

	f, err := loggen.ParseFormat(*format)
	if err != nil {
		return err
	}
	opts := []loggen.Option{
		loggen.WithFormat(f), loggen.Envelope(*envelope), loggen.Seed(*seed),
		loggen.MalformedRatio(*malformed), loggen.Hosts(splitList(*hosts)...), loggen.FilePath(*path),
	}
	if *clock == "wall" {
		opts = append(opts, loggen.Clock(time.Now))
	} else if *rate > 0 {
		opts = append(opts, loggen.SimulatedClock(time.Date(2025, 10, 10, 13, 55, 36, 0, time.UTC), *rate))
	}
	g, err := loggen.New(opts...)
	if err != nil {
		return err
	}

	start := time.Now()
	var n int64
	if seeds := splitList(*brokers); len(seeds) > 0 {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return err
		}
		n, err = loggen.Produce(ctx, cl, *topic, g, *rate, *count)
		cl.Close()
		summary(stderr, g, n, start)
		return err
	}
	if *output == "-" {
		n, err = loggen.Write(ctx, stdout, g, *rate, *count)
	} else {
		var f *os.File
		if f, err = os.Create(*output); err != nil {
			return err
		}
		n, err = loggen.Write(ctx, f, g, *rate, *count)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	summary(stderr, g, n, start)
	return err
}

func summary(w io.Writer, g *loggen.Generator, n int64, start time.Time) {
	el := time.Since(start)
	t := g.Totals()
	fmt.Fprintf(w, "loggen: %d lines written (%d generated, %d malformed, %d bytes) in %.2fs: %.0f lines/s\n",
		n, t.Lines, t.Malformed, t.Bytes, el.Seconds(), float64(n)/el.Seconds())
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
