package lokitest

import (
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// Fault is what the proxy does to a request.
type Fault int

const (
	Pass      Fault = iota // forward to the store
	Refuse                 // reset the connection as soon as it is accepted
	Delay                  // wait, then forward
	Status429              // answer 429 with Retry-After
	Status500              // answer 500
	Cut                    // read the request, then close the connection without an answer
	CutAfter               // forward, then close the connection instead of relaying the answer
)

// Proxy sits in front of a store and injects faults.
type Proxy struct {
	URL        string
	fault      atomic.Int32
	delay      atomic.Int64
	retryAfter atomic.Int64
	requests   atomic.Int64
	forwarded  atomic.Int64
	srv        *http.Server
	ln         net.Listener
	rp         *httputil.ReverseProxy
}

// NewProxy listens on 127.0.0.1 and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{URL: "http://" + ln.Addr().String(), rp: httputil.NewSingleHostReverseProxy(u)}
	p.ln = &refusingListener{Listener: ln, p: p}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(p.ln) }()
	return p, nil
}

// Set changes the fault for the requests that follow.
func (p *Proxy) Set(f Fault) { p.fault.Store(int32(f)) }

// SetDelay sets the wait of Delay.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// SetRetryAfter sets the Retry-After seconds of Status429.
func (p *Proxy) SetRetryAfter(s int) { p.retryAfter.Store(int64(s)) }

// Requests is how many requests reached the proxy; Forwarded how many the
// store answered.
func (p *Proxy) Requests() int64  { return p.requests.Load() }
func (p *Proxy) Forwarded() int64 { return p.forwarded.Load() }

// Close stops the proxy.
func (p *Proxy) Close() { _ = p.srv.Close() }

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	switch Fault(p.fault.Load()) {
	case Refuse: // a kept-alive connection accepted before the fault
		cut(w)
		return
	case Delay:
		time.Sleep(time.Duration(p.delay.Load()))
	case Status429:
		w.Header().Set("Retry-After", strconv.FormatInt(p.retryAfter.Load(), 10))
		http.Error(w, "Ingestion rate limit exceeded (test proxy)", http.StatusTooManyRequests)
		return
	case Status500:
		http.Error(w, "internal error (test proxy)", http.StatusInternalServerError)
		return
	case Cut:
		cut(w)
		return
	case CutAfter:
		rec := &discard{h: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		p.forwarded.Add(1)
		cut(w)
		return
	}
	p.rp.ServeHTTP(w, r)
	p.forwarded.Add(1)
}

func cut(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
		}
	}
}

type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// refusingListener resets connections while the fault is Refuse.
type refusingListener struct {
	net.Listener
	p *Proxy
}

func (l *refusingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if Fault(l.p.fault.Load()) != Refuse {
			return c, nil
		}
		l.p.requests.Add(1)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}
