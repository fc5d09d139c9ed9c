package loggen

import "time"

const beatVersion = "8.15.0"

// Next appends one line (without newline) to dst, or the line wrapped in a
// Filebeat envelope, and returns the extended buffer. Once dst has room for a
// line, Next allocates nothing.
func (g *Generator) Next(dst []byte) []byte {
	t := g.now()
	g.setTime(t)
	h := g.intn(len(g.hosts))
	hs := &g.hosts[h]

	start := len(dst)
	if g.cfg.envelope {
		g.line = g.render(g.line[:0])
		dst = g.wrap(dst, hs, g.line, t)
		g.c.envBytes += int64(len(dst) - start)
		hs.offset += int64(len(g.line)) + 1
		g.c.bytes += int64(len(g.line))
	} else {
		dst = g.render(dst)
		n := int64(len(dst) - start)
		hs.offset += n + 1
		g.c.bytes += n
	}
	g.c.lines++
	g.c.host[h]++
	g.last.Host = hs.name
	g.lastHost = h
	return dst
}

// key is the Kafka key of the last line: its machine.
func (g *Generator) key() []byte {
	return g.hosts[g.lastHost].key
}

func (g *Generator) now() time.Time {
	if g.cfg.clock != nil {
		return g.cfg.clock()
	}
	t := g.cfg.start.Add(time.Duration(float64(g.n) * 1e9 / g.cfg.rate))
	g.n++
	return t
}

// setTime renders the line times once per second, not once per line.
func (g *Generator) setTime(t time.Time) {
	if s := t.Unix(); s != g.sec {
		g.sec = s
		g.tLocal = t.AppendFormat(g.tLocal[:0], "02/Jan/2006:15:04:05 -0700")
		g.tISO = t.AppendFormat(g.tISO[:0], "2006-01-02T15:04:05-07:00")
		g.tErr = t.AppendFormat(g.tErr[:0], "2006/01/02 15:04:05")
	}
}

// render appends one line and counts it.
func (g *Generator) render(dst []byte) []byte {
	r := &g.r
	if g.cfg.malformed > 0 && g.float() < g.cfg.malformed {
		k := KindBinary
		switch v := g.intn(4); {
		case v < 2:
			k = KindTruncated
		case v < 3:
			k = KindForeign
		}
		dst = g.malformed(dst, k)
		g.c.malformed++
		g.c.kinds[k]++
		g.last = Line{Kind: k}
		return dst
	}
	switch v := g.intn(1_000_000); {
	case v < tlsPerMillion:
		g.fillOdd(KindTLS)
	case v < tlsPerMillion+emptyPerMillion:
		g.fillOdd(KindEmpty)
	default:
		g.fill()
	}
	dst = g.write(dst)
	c := &g.c
	c.kinds[r.kind]++
	c.status[r.status]++
	c.vhost[r.vh]++
	c.method[r.method]++
	c.reqMs += r.reqMs
	c.body += r.body
	for i := 0; i < r.ntries; i++ {
		if r.tries[i].rt >= 0 {
			c.upMs += r.tries[i].rt
		}
	}
	g.last = Line{Kind: r.kind, VHost: g.vhosts[r.vh].name, Status: r.status}
	return dst
}

func (g *Generator) malformed(dst []byte, k Kind) []byte {
	switch k {
	case KindTruncated:
		// Cut inside the first half: a quoted field is left open or fields
		// are missing, whatever the format.
		g.fill()
		g.line2 = g.write(g.line2[:0])
		n := len(g.line2)
		return append(dst, g.line2[:n/8+g.intn(n/2-n/8)]...)
	case KindForeign:
		c := &g.clients[g.intn(len(g.clients))]
		dst = append(dst, g.tErr...)
		dst = append(dst, " [error] "...)
		pid := 2231 + uint64(g.intn(4))
		dst = appendUint(dst, pid)
		dst = append(dst, '#')
		dst = appendUint(dst, pid)
		dst = append(dst, ": *"...)
		dst = appendUint(dst, 9180+g.u64()%100000)
		dst = append(dst, ` open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: `...)
		dst = append(dst, c.addr...)
		return append(dst, `, server: _, request: "GET /favicon.ico HTTP/1.1", host: "203.0.113.10"`...)
	default:
		n := 16 + g.intn(160)
		for i := 0; i < n; i++ {
			b := byte(g.u64())
			if b == '\n' {
				b = 0
			}
			dst = append(dst, b)
		}
		return dst
	}
}

// fillOdd makes the valid-but-odd lines scanners and broken clients cause
// on the default server.
func (g *Generator) fillOdd(k Kind) {
	r := &g.r
	r.kind = k
	r.vh = len(g.vhosts) - 1 // the catch-all
	r.method = noMethod
	r.status = 400
	r.ntries = 0
	c := &g.clients[g.intn(len(g.clients))]
	r.addr, r.xff, r.ref, r.ua = c.addr, nil, nil, nil
	r.id0, r.id1 = g.u64(), g.u64()
	if k == KindTLS {
		r.request = g.tlsReq
		r.body = nginxPageSize(400)
		r.reqMs = int64(g.intn(3))
		return
	}
	r.request = nil
	r.body = 0
	r.reqMs = int64(g.intn(60000)) // client_header_timeout: up to a minute of silence
}

// fill makes an HTTP request.
func (g *Generator) fill() {
	r := &g.r
	r.kind = KindRequest
	r.vh = pick(g.vhostCum, g.intn(g.vhostCum[len(g.vhostCum)-1]))
	vh := &g.vhosts[r.vh]
	rt := &vh.routes[pick(vh.routeCum, g.intn(vh.routeCum[len(vh.routeCum)-1]))]
	sp := rt.spec
	r.method = rt.method

	// Who: a skewed pick from the population, so a few clients are busy.
	var c *client
	if sp.class == classProbe {
		c = &g.probes[g.intn(len(g.probes))]
	} else {
		u := g.float()
		c = &g.clients[int(u*u*float64(len(g.clients)))]
	}
	r.addr, r.xff = c.addr, c.xff
	r.ref = nil
	switch v := g.intn(1000); {
	case sp.class == classProbe:
		r.ua = g.probeUA[g.intn(len(g.probeUA))]
	case v < vh.uas.browser:
		r.ua = g.browser[c.browser]
		r.ref = vh.refs[pick(vh.refCum, g.intn(vh.refCum[len(vh.refCum)-1]))]
	case v < vh.uas.browser+vh.uas.app:
		r.ua = g.app[c.app]
	case v < vh.uas.browser+vh.uas.app+vh.uas.bot:
		r.ua = g.bot[g.intn(len(g.bot))]
	default:
		r.ua = g.scanner[g.intn(len(g.scanner))]
		if vh.name == "_" {
			r.ref = vh.refs[pick(vh.refCum, g.intn(vh.refCum[len(vh.refCum)-1]))]
		}
	}

	// The request line.
	q := g.req[:0]
	q = append(q, methods[r.method]...)
	q = append(q, ' ')
	for _, s := range rt.segs {
		switch s.op {
		case 0:
			q = append(q, s.lit...)
		case 'i':
			q = appendUint(q, 1000+uint64(g.logNormal(90000, g.lnID))%9_000_000)
		case 'u':
			// A user population of 50000: ids repeat like real ones.
			q = g.uuid(q, uint64(g.intn(50000)))
		case 'h':
			q = appendHex64(q, mix64(uint64(g.intn(6))))[:len(q)+8]
		case 'p':
			q = appendUint(q, 1+uint64(g.intn(12)))
		case 's':
			q = append(q, slugs[g.intn(len(slugs))]...)
		case 'q':
			q = append(q, queries[g.intn(len(queries))]...)
		case 'w':
			q = append(q, widths[g.intn(len(widths))]...)
		case 'o':
			q = appendUint(q, 50*uint64(g.intn(40)))
		}
	}
	switch v := g.intn(100); {
	case v < 2:
		q = append(q, " HTTP/1.0"...)
	case v < 70:
		q = append(q, " HTTP/1.1"...)
	default:
		q = append(q, " HTTP/2.0"...)
	}
	g.req = q
	r.request = q

	g.status(rt)
	g.timing(rt)
	g.size(rt)
	r.id0, r.id1 = g.u64(), g.u64()
}

func (g *Generator) status(rt *route) {
	r, sp := &g.r, rt.spec
	r.status = sp.ok
	switch sp.class {
	case classScanner:
		r.status = sp.status
		return
	case classProbe:
		return
	}
	if sp.cache && r.method == 0 && g.per(notModified, 100000) {
		r.status = 304
		return
	}
	table := appStatuses
	if sp.class == classStatic {
		table = staticStatuses
	}
	v := g.intn(100000)
	for _, s := range table {
		if v < s.w {
			r.status = s.status
			return
		}
		v -= s.w
	}
}

// timing sets $request_time and the upstream attempts: a log-normal body,
// rare multi-second outliers, and the shapes nginx logs for retries,
// timeouts, refused connections and clients that give up.
func (g *Generator) timing(rt *route) {
	r, sp := &g.r, rt.spec
	ms := g.logNormal(sp.latMs, rt.lat)
	if rt.upstream && g.per(outlierPerMil, 1_000_000) {
		ms *= 20 + 180*g.float()
	}
	switch r.status {
	case 304, 404, 403, 206:
		if !rt.upstream {
			ms *= 0.5
		}
	case 301, 302, 400, 401, 429:
		ms *= 0.3
	case 499:
		ms = 50 + 8000*g.float()*g.float()
	}
	up := int64(ms + 0.5)
	if up > 120_000 {
		up = 120_000
	}
	r.ntries = 0
	if !rt.upstream {
		r.reqMs = up
		return
	}
	vh := &g.vhosts[r.vh]
	addr := g.intn(len(vh.upstreams))
	t0 := &r.tries[0]
	*t0 = try{addr: vh.upstreams[addr], status: r.status, rt: up, ct: int64(g.intn(3) / 2), sep: ','}
	t0.ht = up - int64(float64(up)*0.2*g.float())
	r.ntries = 1
	switch r.status {
	case 499:
		t0.status, t0.ht = 0, -1
	case 502:
		// Connection refused: no connect, no header, nothing else to try.
		t0.rt, t0.ct, t0.ht = int64(g.intn(2)), -1, -1
	case 504:
		t0.rt, t0.ht = 60_000+int64(g.intn(5)), -1
	default:
		switch v := g.intn(1_000_000); {
		case v < retryPerMillion:
			// proxy_next_upstream: the first server refused, the next answered.
			second := r.tries[0]
			second.addr = vh.upstreams[(addr+1+g.intn(len(vh.upstreams)-1))%len(vh.upstreams)]
			r.tries[1] = second
			*t0 = try{addr: vh.upstreams[addr], status: 502, rt: int64(g.intn(2)), ct: -1, ht: -1, sep: ','}
			r.ntries = 2
		case v < retryPerMillion+groupPerMillion:
			// error_page 503 = @fallback: a second upstream group, after " : ".
			second := r.tries[0]
			second.addr, second.sep = g.fallback, ':'
			r.tries[1] = second
			fail := int64(1 + g.intn(10))
			*t0 = try{addr: vh.upstreams[addr], status: 503, rt: fail, ct: 0, ht: fail, sep: ','}
			r.ntries = 2
		}
	}
	var sum int64
	for i := 0; i < r.ntries; i++ {
		sum += r.tries[i].rt
	}
	r.reqMs = sum + int64(g.intn(3))
}

func (g *Generator) size(rt *route) {
	r, sp := &g.r, rt.spec
	switch {
	case r.method == 4 || r.status == 304 || r.status == 204 || r.status == 499: // HEAD, or nothing to send
		r.body = 0
	case sp.class == classScanner:
		r.body = int64(sp.size)
	case r.status >= 300 && (!rt.upstream || r.status >= 502):
		r.body = nginxPageSize(r.status) // nginx's own error page
	case sp.size == 0:
		r.body = 0
	case r.status == 206:
		r.body = 1 + int64(sp.size*g.float()*0.5)
	case r.status >= 300:
		r.body = 20 + int64(g.logNormal(90, g.lnErr)) // the application's short error or redirect body
	case sp.class == classStatic:
		r.body = 1 + int64(g.logNormal(sp.size, g.lnBody))
	default:
		r.body = 1 + int64(g.logNormal(sp.size, g.lnApp))
	}
}

// write appends the line for g.r in the generator's format.
func (g *Generator) write(dst []byte) []byte {
	r := &g.r
	if !g.text {
		return g.writeJSON(dst)
	}
	dst = append(dst, r.addr...)
	dst = append(dst, " - - ["...)
	dst = append(dst, g.tLocal...)
	dst = append(dst, `] "`...)
	dst = g.opt(dst, r.request)
	dst = append(dst, `" `...)
	dst = appendUint(dst, uint64(r.status))
	dst = append(dst, ' ')
	dst = appendUint(dst, uint64(r.body))
	dst = append(dst, ` "`...)
	dst = g.opt(dst, r.ref)
	dst = append(dst, `" "`...)
	dst = g.opt(dst, r.ua)
	dst = append(dst, '"')
	if g.cfg.format == Combined {
		return dst
	}
	dst = append(dst, ` "`...)
	dst = g.opt(dst, r.xff)
	dst = append(dst, '"')
	if g.cfg.format == Main {
		return dst
	}
	dst = append(dst, ' ')
	dst = append(dst, g.vhosts[r.vh].name...)
	dst = append(dst, ' ')
	dst = appendMillis(dst, r.reqMs)
	dst = append(dst, ' ')
	dst = g.tries(dst, 'r')
	dst = append(dst, ' ')
	dst = g.tries(dst, 'c')
	dst = append(dst, ' ')
	dst = g.tries(dst, 'h')
	dst = append(dst, ' ')
	dst = g.tries(dst, 's')
	dst = append(dst, ' ')
	dst = g.tries(dst, 'a')
	dst = append(dst, ' ')
	dst = appendHex64(dst, r.id0)
	return appendHex64(dst, r.id1)
}

func (g *Generator) writeJSON(dst []byte) []byte {
	r := &g.r
	dst = append(dst, `{"time":"`...)
	dst = append(dst, g.tISO...)
	dst = append(dst, `","remote_addr":"`...)
	dst = append(dst, r.addr...)
	dst = append(dst, `","request":"`...)
	dst = append(dst, r.request...)
	dst = append(dst, `","status":`...)
	dst = appendUint(dst, uint64(r.status))
	dst = append(dst, `,"body_bytes_sent":`...)
	dst = appendUint(dst, uint64(r.body))
	dst = append(dst, `,"request_time":`...)
	dst = appendMillis(dst, r.reqMs)
	dst = append(dst, `,"upstream_response_time":"`...)
	dst = g.tries(dst, 'r')
	dst = append(dst, `","upstream_status":"`...)
	dst = g.tries(dst, 's')
	dst = append(dst, `","upstream_addr":"`...)
	dst = g.tries(dst, 'a')
	dst = append(dst, `","host":"`...)
	dst = append(dst, g.vhosts[r.vh].name...)
	dst = append(dst, `","http_user_agent":"`...)
	dst = append(dst, r.ua...)
	dst = append(dst, `","http_referer":"`...)
	dst = append(dst, r.ref...)
	dst = append(dst, `","request_id":"`...)
	dst = appendHex64(dst, r.id0)
	dst = appendHex64(dst, r.id1)
	return append(dst, `"}`...)
}

// opt appends v, or the format's mark of an unset variable.
func (g *Generator) opt(dst, v []byte) []byte {
	if v == nil {
		return append(dst, g.dash...)
	}
	return append(dst, v...)
}

// tries appends one upstream variable over all attempts, as nginx does:
// values joined by ", " (next server) or " : " (next upstream group), "-"
// for an attempt without a value.
func (g *Generator) tries(dst []byte, field byte) []byte {
	r := &g.r
	if r.ntries == 0 {
		return append(dst, g.dash...)
	}
	for i := 0; i < r.ntries; i++ {
		t := &r.tries[i]
		if i > 0 {
			if t.sep == ':' {
				dst = append(dst, " : "...)
			} else {
				dst = append(dst, ", "...)
			}
		}
		var v int64
		switch field {
		case 'a':
			dst = append(dst, t.addr...)
			continue
		case 's':
			if t.status == 0 {
				dst = append(dst, '-')
			} else {
				dst = appendUint(dst, uint64(t.status))
			}
			continue
		case 'r':
			v = t.rt
		case 'c':
			v = t.ct
		case 'h':
			v = t.ht
		}
		if v < 0 {
			dst = append(dst, '-')
		} else {
			dst = appendMillis(dst, v)
		}
	}
	return dst
}

// wrap appends the Filebeat 8 event for line, in the field order Filebeat's
// Kafka output writes.
func (g *Generator) wrap(dst []byte, hs *hostState, line []byte, t time.Time) []byte {
	// Filebeat stamps the event when it reads the line: a little later.
	t = t.Add(time.Duration(1+g.intn(250)) * time.Millisecond).UTC()
	if s := t.Unix(); s != g.envSec {
		g.envSec = s
		g.envTime = t.AppendFormat(g.envTime[:0], "2006-01-02T15:04:05")
	}
	ms := t.Nanosecond() / 1e6
	dst = append(dst, `{"@timestamp":"`...)
	dst = append(dst, g.envTime...)
	dst = append(dst, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	dst = append(dst, `","@metadata":{"beat":"filebeat","type":"_doc","version":"`+beatVersion+`"},"message":"`...)
	dst = appendJSONString(dst, line)
	dst = append(dst, `","log":{"offset":`...)
	dst = appendUint(dst, uint64(hs.offset))
	return append(dst, hs.suffix...)
}
