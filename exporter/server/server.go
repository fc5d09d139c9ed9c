// Package server is the exporter's HTTP side: the metrics endpoint, liveness
// and readiness probes, a landing page and, on request, pprof.
//
// TLS, basic authentication and rate limiting come from exporter-toolkit's
// web configuration file (--web.config.file), so the exporter behaves like
// every other Prometheus exporter and shares its documentation:
// https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultTelemetryPath       = "/metrics"
	DefaultMaxRequestsInFlight = 40
	DefaultScrapeTimeout       = 30 * time.Second
	DefaultShutdownTimeout     = 5 * time.Second
	DefaultMaxConnections      = 256
	DefaultMaxEncodings        = 2
	DefaultReadHeaderTimeout   = 10 * time.Second
	DefaultWriteTimeout        = time.Minute
	DefaultIdleTimeout         = time.Minute
)

// Readiness reports whether the exporter can do its job. why is shown to the
// caller of /readyz in both states, so it should name what is being waited
// for (for example "waiting for group join (brokers: a:9092,b:9092)").
type Readiness interface {
	Ready() (ok bool, why string)
}

// ReadinessFunc adapts a function to Readiness.
type ReadinessFunc func() (ok bool, why string)

// Ready calls f.
func (f ReadinessFunc) Ready() (bool, string) { return f() }

// Config is what the HTTP side needs to know. Zero values take the defaults
// named on each field.
type Config struct {
	// Flags holds --web.listen-address, --web.systemd-socket and
	// --web.config.file, as built by exporter-toolkit's kingpinflag.AddFlags.
	// Required by Listen and Run; Handler works without it.
	Flags *web.FlagConfig

	// TelemetryPath is where metrics are served. Default "/metrics".
	TelemetryPath string

	// EnablePprof registers net/http/pprof under /debug/pprof/. Off by
	// default: profiles expose internals and a CPU profile costs CPU.
	EnablePprof bool

	// Version is shown on the landing page.
	Version string

	// Reload, when set, is served at POST /-/reload, Prometheus's lifecycle
	// endpoint: 200 when the new configuration is in force, 500 with the
	// error (file, line and field) when it was rejected and the old one stays.
	Reload func() error

	// Expositions are metric families encoded ahead of the scrape, served
	// at TelemetryPath with the registry's. Their names must not be the
	// registry's.
	Expositions []Exposition

	// ShutdownTimeout bounds how long Run waits for in-flight requests after
	// its context is done before closing connections. Default 5s.
	ShutdownTimeout time.Duration

	// Limits bound what clients can make the server hold: memory, file
	// descriptors, time.
	Limits
}

// Limits are the HTTP server's bounds, one flag each (--web.max-requests,
// --web.scrape-timeout, --web.max-encodings, --web.max-connections,
// --web.read-header-timeout, --web.write-timeout, --web.idle-timeout).
type Limits struct {
	// MaxRequestsInFlight bounds concurrent scrapes; further ones get 503.
	// Default 40 (node_exporter's): two Prometheus replicas and a few
	// humans never get close, a runaway client cannot pile up gathers.
	// Negative means no limit.
	MaxRequestsInFlight int

	// ScrapeTimeout answers a scrape with 503 when gathering takes longer.
	// Default 30s. Collectors here never block on Kafka or Loki, so this only
	// fires when something is badly wrong. Negative means no timeout.
	ScrapeTimeout time.Duration

	// MaxEncodings is how many encoded /metrics bodies of one format may
	// be alive at once (each as large as the exposition, ~100 MB with the
	// series budget full). Concurrent scrapes share one; slow readers pin
	// theirs until done, and past this bound new scrapes join the newest
	// instead of making another. Default 2.
	MaxEncodings int

	// MaxConnections bounds the open connections per listen address; at
	// the bound the connection idle longest is closed to make room (see
	// connLimit). Default 256: far above MaxRequestsInFlight, far below
	// the usual 1024 file descriptors. Negative means no limit.
	MaxConnections int

	// ReadHeaderTimeout, WriteTimeout and IdleTimeout are the http.Server's.
	// WriteTimeout cuts a scraper that reads too slowly (it holds a slot of
	// MaxRequestsInFlight until then); for /metrics it counts from when the
	// body is ready, and must exceed the time a real scraper needs to read
	// the largest body. pprof's profile and trace
	// extend it by the seconds they are asked for. Defaults 10s, 1m, 1m;
	// negative means none.
	ReadHeaderTimeout time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
}

// Server serves the exporter's HTTP endpoints. Build one with New.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	handler  http.Handler
	rejected *prometheus.CounterVec // by reason
	scrapes  scrapes

	mu        sync.Mutex
	listeners []net.Listener
}

// New builds the handlers. It registers promhttp's own metrics
// (promhttp_metric_handler_*) on reg, which must not be nil; calling New twice
// with the same registry is fine. ready may be nil, meaning always ready; a
// nil logger discards.
func New(cfg Config, reg *prometheus.Registry, ready Readiness, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TelemetryPath == "" {
		cfg.TelemetryPath = DefaultTelemetryPath
	}
	if !strings.HasPrefix(cfg.TelemetryPath, "/") {
		cfg.TelemetryPath = "/" + cfg.TelemetryPath
	}
	if cfg.MaxRequestsInFlight == 0 {
		cfg.MaxRequestsInFlight = DefaultMaxRequestsInFlight
	}
	if cfg.ScrapeTimeout == 0 {
		cfg.ScrapeTimeout = DefaultScrapeTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.MaxEncodings <= 0 {
		cfg.MaxEncodings = DefaultMaxEncodings
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&cfg.WriteTimeout, DefaultWriteTimeout}, {&cfg.IdleTimeout, DefaultIdleTimeout}} {
		switch {
		case *d.v == 0:
			*d.v = d.def
		case *d.v < 0:
			*d.v = 0 // http.Server's "none"
		}
	}
	if ready == nil {
		ready = ReadinessFunc(func() (bool, string) { return true, "ok" })
	}
	s := &Server{cfg: cfg, logger: logger}
	s.handler = s.routes(reg, ready)
	return s
}

// Handler returns the endpoints without TLS or basic auth, which the web
// configuration file adds only when serving through Run.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes(reg *prometheus.Registry, ready Readiness) http.Handler {
	mux := http.NewServeMux()

	// As promhttp.HandlerFor with ContinueOnError (a failing collector,
	// say the Kafka health poller, must not hide the request metrics),
	// OpenMetrics (exemplars) and protobuf (native histograms), plus the
	// pre-encoded expositions.
	metrics := s.metricsHandler(reg, s.cfg.Expositions)
	mux.Handle(s.cfg.TelemetryPath, promhttp.InstrumentMetricHandler(reg, metrics))

	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})

	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ready.Ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		if why == "" {
			why = "ok"
			if !ok {
				why = "not ready"
			}
		}
		writeText(w, code, why)
	})

	if s.cfg.Reload != nil {
		mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost && r.Method != http.MethodPut {
				w.Header().Set("Allow", "POST, PUT")
				writeText(w, http.StatusMethodNotAllowed, "use POST or PUT to reload the configuration")
				return
			}
			if err := s.cfg.Reload(); err != nil {
				writeText(w, http.StatusInternalServerError, "configuration not reloaded: "+err.Error())
				return
			}
			writeText(w, http.StatusOK, "configuration reloaded")
		})
	}

	links := []web.LandingLinks{
		{Address: s.cfg.TelemetryPath, Text: "Metrics"},
		{Address: "/healthz", Text: "Health", Description: "200 while the process is alive"},
		{Address: "/readyz", Text: "Readiness", Description: "200 once consuming, else 503 and the reason"},
	}
	profiling := "false"
	if s.cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", s.longer(30, pprof.Profile))
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", s.longer(1, pprof.Trace))
		links = append(links, web.LandingLinks{Address: "/debug/pprof/", Text: "Profiling", Description: "net/http/pprof"})
		profiling = "true"
	}

	if s.cfg.TelemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "accesslog-exporter",
			Description: "Prometheus metrics from nginx access logs read from Kafka",
			Version:     s.cfg.Version,
			Links:       links,
			Profiling:   profiling,
		})
		if err != nil {
			// Only a broken template embedded in exporter-toolkit gets here;
			// the exporter is still useful without its landing page.
			s.logger.Error("landing page disabled", "err", err)
		} else {
			mux.Handle("/", landing)
		}
	}
	return mux
}

// longer extends the write timeout of a handler that streams for ?seconds=
// (default def), as pprof's profile and trace do.
func (s *Server) longer(def int, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.WriteTimeout > 0 {
			secs, err := strconv.Atoi(r.FormValue("seconds"))
			if err != nil || secs <= 0 {
				secs = def
			}
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(secs)*time.Second + s.cfg.WriteTimeout))
		}
		h(w, r)
	}
}

func writeText(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, body)
}

// Listen binds the configured addresses (or takes the systemd-activated
// sockets) without serving yet, so that Addr can report ports chosen by the
// kernel for ":0". Run calls it when the caller has not. The web
// configuration file is checked here too, so a bad one fails at startup.
func (s *Server) Listen(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listeners != nil {
		return nil
	}
	f := s.cfg.Flags
	if f == nil || f.WebConfigFile == nil {
		return web.ErrMissingFlag
	}
	if err := web.Validate(*f.WebConfigFile); err != nil {
		return fmt.Errorf("web config file %q: %w", *f.WebConfigFile, err)
	}

	if f.WebSystemdSocket != nil && *f.WebSystemdSocket {
		ls, err := activation.Listeners()
		if err != nil {
			return fmt.Errorf("systemd socket activation: %w", err)
		}
		if len(ls) == 0 {
			return errors.New("systemd socket activation: no sockets passed")
		}
		s.listeners = ls
		return nil
	}

	if f.WebListenAddresses == nil || len(*f.WebListenAddresses) == 0 {
		return web.ErrNoListeners
	}
	var lc net.ListenConfig
	ls := make([]net.Listener, 0, len(*f.WebListenAddresses))
	for _, addr := range *f.WebListenAddresses {
		l, err := listen(ctx, &lc, addr)
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
			return err
		}
		ls = append(ls, l)
	}
	s.listeners = ls
	return nil
}

// listen understands the address forms of exporter-toolkit's ListenAndServe:
// host:port, and vsock://:port for virtual machines.
func listen(ctx context.Context, lc *net.ListenConfig, addr string) (net.Listener, error) {
	if !strings.HasPrefix(addr, "vsock://") {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		return l, nil
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	port, err := strconv.ParseUint(u.Port(), 10, 32)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: bad vsock port: %w", addr, err)
	}
	l, err := vsock.Listen(uint32(port), nil)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return l, nil
}

// Addr is the first bound address, nil before Listen (or Run) has bound.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.listeners) == 0 {
		return nil
	}
	return s.listeners[0].Addr()
}

// Addrs are all bound addresses, in the order of --web.listen-address.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs := make([]net.Addr, len(s.listeners))
	for i, l := range s.listeners {
		addrs[i] = l.Addr()
	}
	return addrs
}

// Run serves until ctx is done, then stops accepting, waits up to
// ShutdownTimeout for requests in flight, and returns nil. It returns an
// error when binding or serving fails, or when requests were still running
// at the deadline (their connections are then closed). A Server runs once.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	listeners := s.listeners
	s.mu.Unlock()

	// One http.Server per listener: web.Serve wraps server.Handler and sets
	// server.TLSConfig, which is a data race when listeners share a server
	// (as web.ServeMultiple does).
	servers := make([]*http.Server, len(listeners))
	errc := make(chan error, len(listeners))
	for i, l := range listeners {
		srv := &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			WriteTimeout:      s.cfg.WriteTimeout,
			IdleTimeout:       s.cfg.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(s.logger.With("component", "http").Handler(), slog.LevelWarn),
		}
		if s.cfg.MaxConnections > 0 {
			cl := newConnLimit(l, s.cfg.MaxConnections, func(reason string) { s.rejected.WithLabelValues(reason).Inc() })
			srv.ConnState = cl.track
			l = cl
		}
		servers[i] = srv
		go func() {
			err := web.Serve(l, srv, s.cfg.Flags, s.logger)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}

	var serveErr error
	running := len(servers)
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		running--
		if serveErr == nil {
			serveErr = errors.New("http server stopped unexpectedly")
		}
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	var shutdownErr error
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
			shutdownErr = fmt.Errorf("http shutdown after %s: %w", s.cfg.ShutdownTimeout, err)
		}
	}
	for ; running > 0; running-- {
		if err := <-errc; err != nil && serveErr == nil {
			serveErr = err
		}
	}
	// web.Serve returns before server.Serve (which owns the listener) when
	// the web config file turns bad between Listen and Run.
	for _, l := range listeners {
		_ = l.Close()
	}
	if serveErr != nil {
		return serveErr
	}
	return shutdownErr
}
