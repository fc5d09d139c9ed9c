package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// connLimit bounds the open connections of one listener, so that idle
// keep-alive connections or clients that never send a request cannot use up
// the process's file descriptors and starve /healthz and /readyz (20,000
// idle keep-alives did).
//
// At most max connections are open. A connection accepted at the limit
// makes room by closing the one that has waited longest with no request in
// progress: an idle keep-alive (its client reconnects, as after the idle
// timeout), else one that has not sent its request yet. Only when every
// open connection is in the middle of a request is the new one closed at
// once. Requests in progress are few: /metrics is bounded by
// --web.max-requests and the probes answer at once, so with max well above
// that bound a probe always finds room.
type connLimit struct {
	net.Listener
	max    int
	counts func(reason string) // idle_closed, connection_limit

	mu    sync.Mutex
	conns map[*limitedConn]struct{}
}

type limitedConn struct {
	net.Conn
	l     *connLimit
	state http.ConnState // under l.mu
	since time.Time      // when it entered state
}

func newConnLimit(l net.Listener, max int, counts func(string)) *connLimit {
	return &connLimit{Listener: l, max: max, counts: counts, conns: map[*limitedConn]struct{}{}}
}

func (l *connLimit) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, state: http.StateNew, since: time.Now()}
		l.mu.Lock()
		var victim *limitedConn
		if len(l.conns) >= l.max {
			victim = l.victim()
			if victim == nil {
				l.mu.Unlock()
				_ = c.Close()
				l.counts("connection_limit")
				continue
			}
			delete(l.conns, victim)
		}
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			// The server notices the closed socket and forgets it.
			_ = victim.Conn.Close()
			l.counts("idle_closed")
		}
		return lc, nil
	}
}

// victim is the idle connection idle longest, else the oldest that has not
// started a request, else nil. Called with l.mu held.
func (l *connLimit) victim() *limitedConn {
	var idle, fresh *limitedConn
	for c := range l.conns {
		switch c.state {
		case http.StateIdle:
			if idle == nil || c.since.Before(idle.since) {
				idle = c
			}
		case http.StateNew:
			if fresh == nil || c.since.Before(fresh.since) {
				fresh = c
			}
		}
	}
	if idle != nil {
		return idle
	}
	return fresh
}

// track is the http.Server's ConnState hook.
func (l *connLimit) track(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitedConn)
	if !ok || lc.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, open := l.conns[lc]; !open {
		return
	}
	if st == http.StateClosed || st == http.StateHijacked {
		delete(l.conns, lc)
		return
	}
	lc.state, lc.since = st, time.Now()
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
