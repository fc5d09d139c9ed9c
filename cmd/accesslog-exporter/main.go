// Command accesslog-exporter turns nginx access-log lines read from Kafka
// into Prometheus metrics. main parses flags, builds a config and calls one
// Run; everything else lives in exporter/.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/pipeline"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/server"
)

const name = "accesslog-exporter"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	app := kingpin.New(name, "Turns nginx access-log lines consumed from Kafka into Prometheus metrics.")
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	configFile := app.Flag("config.file", "Configuration file (YAML). Without one, built-in defaults.").String()
	logConfig := &promslog.Config{}
	promslogflag.AddFlags(app, logConfig)

	serve := app.Command("run", "Consume the topic and serve /metrics (the default command).").Default()
	sf := addServeFlags(serve)

	replay := app.Command("replay", "Process log lines from files (or stdin) exactly as the Kafka path does; print the metrics to stdout and a summary to stderr.")
	replayFormat := replay.Flag("log-format", "log_format string or preset name; overrides input.format.").String()
	replayFiles := replay.Arg("file", "Log files; stdin when none.").Strings()

	check := app.Command("check-config", "Validate a configuration file and print the effective configuration.")
	checkFile := check.Arg("file", "Configuration file.").Required().String()

	versionCmd := app.Command("version", "Print the version.")

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	logConfig.Writer = stderr
	logger := promslog.New(logConfig)

	switch cmd {
	case versionCmd.FullCommand():
		fmt.Fprintln(stdout, version.Print(name))
		return 0
	case check.FullCommand():
		cfg, err := config.Load(*checkFile)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprint(stdout, cfg.String())
		return 0
	}

	cfg, err := config.Load(*configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}

	switch cmd {
	case replay.FullCommand():
		if *replayFormat != "" {
			cfg.Input.Format = *replayFormat
		}
		sum, err := pipeline.Replay(cfg, *replayFiles, stdin, stdout)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		sum.WriteSummary(stderr)
		return 0
	}

	return sf.serve(cfg, *configFile, logger, stderr)
}

// serveFlags are the flags of the run command.
type serveFlags struct {
	web             *web.FlagConfig
	telemetryPath   *string
	enablePprof     *bool
	enableLifecycle *bool
	limits          server.Limits
	brokers, roles  *string
	embedded        *bool
	embeddedRate    *float64
	shutdownTimeout *time.Duration
}

func addServeFlags(serve *kingpin.CmdClause) *serveFlags {
	f := &serveFlags{}
	f.web = kingpinflag.AddFlags(serve, ":9717")
	f.telemetryPath = serve.Flag("web.telemetry-path", "Path under which to expose metrics.").Default("/metrics").String()
	f.enablePprof = serve.Flag("web.enable-pprof", "Serve /debug/pprof/.").Bool()
	f.enableLifecycle = serve.Flag("web.enable-lifecycle", "Serve POST /-/reload, which re-reads the configuration file as SIGHUP does.").Bool()
	serve.Flag("web.max-requests", "Concurrent scrapes of the metrics path; further ones get 503 (negative: no limit). Slow readers count until the write timeout cuts them.").
		Default("40").IntVar(&f.limits.MaxRequestsInFlight)
	serve.Flag("web.scrape-timeout", "A scrape whose metrics take longer to gather gets 503.").
		Default("30s").DurationVar(&f.limits.ScrapeTimeout)
	serve.Flag("web.max-encodings", "Encoded metrics bodies of one format alive at once, shared by concurrent scrapes; each is as large as the exposition.").
		Default("2").IntVar(&f.limits.MaxEncodings)
	serve.Flag("web.max-connections", "Open connections per listen address; at the limit the one idle longest is closed (negative: no limit).").
		Default("256").IntVar(&f.limits.MaxConnections)
	serve.Flag("web.read-header-timeout", "Time a client has to send its request header.").
		Default("10s").DurationVar(&f.limits.ReadHeaderTimeout)
	serve.Flag("web.write-timeout", "Time a client has to read a response (for the metrics path, from when its body is ready).").
		Default("1m").DurationVar(&f.limits.WriteTimeout)
	serve.Flag("web.idle-timeout", "Time a keep-alive connection may idle between requests.").
		Default("1m").DurationVar(&f.limits.IdleTimeout)
	f.brokers = serve.Flag("kafka.brokers", "Comma-separated seed brokers; overrides kafka.brokers of the config file.").String()
	f.embedded = serve.Flag("kafka.embedded", "Start an in-process 3-broker Kafka fed by the traffic generator, and consume it (the demo `make run` starts).").Bool()
	f.embeddedRate = serve.Flag("kafka.embedded.rate", "Lines per second the embedded generator writes.").Default("500").Float64()
	f.roles = serve.Flag("roles", "Comma-separated sinks this process feeds, each through its own consumer group: metrics, logs or both; overrides roles of the config file.").String()
	f.shutdownTimeout = serve.Flag("shutdown.timeout", "The whole shutdown after SIGTERM: waiting for counted and acknowledged lines, the final commits and leaving the consumer groups. loki.shutdown_timeout bounds the log path within it.").Default("30s").Duration()

	return f
}

// serve runs the pipeline until SIGINT or SIGTERM; SIGHUP reloads.
func (f *serveFlags) serve(cfg *config.Config, configFile string, logger *slog.Logger, stderr io.Writer) int {
	// The flag wins over the file, on start and on every reload.
	override := func(c *config.Config) error {
		if *f.brokers == "" && *f.roles == "" {
			return nil
		}
		if *f.brokers != "" {
			c.Kafka.Brokers = strings.Split(*f.brokers, ",")
		}
		if *f.roles != "" {
			c.Roles = strings.Split(*f.roles, ",")
		}
		return c.Validate()
	}
	if err := override(cfg); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if len(cfg.Kafka.Brokers) == 0 && !*f.embedded {
		fmt.Fprintf(stderr, "%s: no Kafka brokers: set kafka.brokers in the config file, pass --kafka.brokers, or --kafka.embedded for the built-in demo\n", name)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloads := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reloads <- struct{}{}:
			default: // one is pending already
			}
		}
	}()
	logger.Info("starting "+name, "version", version.Info(), "build_context", version.BuildContext())
	if *f.embedded {
		withDemo, stopDemo, err := startDemo(cfg, *f.embeddedRate, logger, override)
		if err != nil {
			logger.Error("exiting", "err", err)
			return 1
		}
		defer stopDemo() // after pipeline.Run: its final commits need the brokers
		override = withDemo
	}
	err := pipeline.Run(ctx, cfg, pipeline.Options{
		Web:             f.web,
		TelemetryPath:   *f.telemetryPath,
		EnablePprof:     *f.enablePprof,
		EnableLifecycle: *f.enableLifecycle,
		HTTPLimits:      f.limits,
		ConfigFile:      configFile,
		Override:        override,
		Reloads:         reloads,
		ShutdownTimeout: *f.shutdownTimeout,
		Version:         version.Info(),
		Logger:          logger,
		Started: func(s *server.Server) {
			if *f.embedded {
				fmt.Fprintf(stderr, "\n  %s is consuming an embedded Kafka with generated nginx traffic.\n  Metrics:   http://%s%s\n  Ready:     http://%s/readyz\n  Stop with Ctrl-C.\n\n", name, s.Addr(), *f.telemetryPath, s.Addr())
			}
		},
	})
	if err != nil {
		logger.Error("exiting", "err", err)
		return 1
	}
	return 0
}
