package metrics

import (
	"strings"
	"testing"
)

func TestNormalizeRoute(t *testing.T) {
	long := "/docs/" + strings.Repeat("chapter/", 40) + "end"
	tests := []struct {
		name, path, want string
	}{
		{"root", "/", "/"},
		{"static word", "/healthz", "/healthz"},
		{"numeric id", "/api/v1/orders/12345", "/api/v1/orders/:id"},
		{"numeric id then word", "/api/v1/orders/12345/items", "/api/v1/orders/:id/items"},
		{"two ids", "/users/42/posts/7", "/users/:id/posts/:id"},
		{"uuid", "/users/550e8400-e29b-41d4-a716-446655440000/avatar", "/users/:uuid/avatar"},
		{"uuid upper case", "/v2/sessions/550E8400-E29B-41D4-A716-446655440000", "/v2/sessions/:uuid"},
		{"git sha", "/repo/commit/3f9a2b1c4d5e6f708192a3b4c5d6e7f801234567", "/repo/commit/:hash"},
		{"short hex hash", "/blobs/3f9a2b1c", "/blobs/:hash"},
		{"hex word without digit kept", "/cafe/deadbeef", "/cafe/deadbeef"},
		{"hashed asset keeps extension", "/static/app.3f9a2b1c.js", "/static/app.:hash.js"},
		{"hashed asset with dash", "/assets/main-3f9a2b1c.css", "/assets/main-:hash.css"},
		{"chunk name", "/static/js/vendors~main.8f3d2a1b.chunk.js", "/static/js/vendors~main.:hash.chunk.js"},
		{"numeric file name", "/img/12345.jpg", "/img/:id.jpg"},
		{"versioned library kept", "/js/jquery-3.6.0.min.js", "/js/jquery-3.6.0.min.js"},
		{"plain file", "/favicon.ico", "/favicon.ico"},
		{"dot file", "/.well-known/acme-challenge/x", "/.well-known/acme-challenge/x"},
		{"api token", "/api/keys/sk_live_51HxJkL2eZvKYlo2CabcdEF", "/api/keys/:token"},
		{"jwt", "/auth/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "/auth/:token"},
		{"short random id", "/watch/dQw4w9WgXcQ", "/watch/:token"},
		{"mixed word kept", "/downloads/mp3files", "/downloads/mp3files"},
		{"email", "/users/jane.doe@example.com/profile", "/users/:email/profile"},
		{"email percent-encoded", "/unsubscribe/jane%40example.com", "/unsubscribe/:email"},
		{"date", "/reports/2024-05-17/summary", "/reports/:date/summary"},
		{"blog date segments", "/blog/2024/05/my-first-post", "/blog/:id/:id/my-first-post"},
		{"version segments kept", "/api/v2beta/things", "/api/v2beta/things"},
		{"double slash", "//double", "/double"},
		{"slashes inside", "/a//b///c", "/a/b/c"},
		{"trailing slash kept", "/users/42/", "/users/:id/"},
		{"percent-encoded word kept", "/search/caf%C3%A9", "/search/caf%C3%A9"},
		{"percent-encoded file", "/files/My%20Document.pdf", "/files/My%20Document.pdf"},
		{"slug kept", "/blog/how-to-configure-nginx", "/blog/how-to-configure-nginx"},
		{"product sku", "/p/12345-blue-widget", "/p/12345-blue-widget"},
		{"wordpress", "/wp-admin/admin-ajax.php", "/wp-admin/admin-ajax.php"},
		{"asterisk", "*", "*"},
		{"absolute form", "http://example.com/api/v1/orders/9", "/api/v1/orders/:id"},
		{"absolute form no path", "http://example.com", "/"},
		{"connect authority", "example.com:443", ":other"},
		{"very long path truncated", long, "/docs/" + strings.Repeat("chapter/", 24) + "..."},
		{"very long numeric path", "/" + strings.Repeat("1/", 300), "/" + strings.Repeat(":id/", 50) + "..."},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if seen[tt.name] {
				t.Fatalf("duplicate case name")
			}
			seen[tt.name] = true
			got := string(NormalizeRoute([]byte("prefix"), []byte(tt.path)))
			if !strings.HasPrefix(got, "prefix") {
				t.Fatalf("dst prefix lost: %q", got)
			}
			got = strings.TrimPrefix(got, "prefix")
			if got != tt.want {
				t.Errorf("NormalizeRoute(%q)\n got %q\nwant %q", tt.path, got, tt.want)
			}
			if len(got) > maxRouteLen+4 {
				t.Errorf("route %d bytes, want <= %d", len(got), maxRouteLen+4)
			}
		})
	}
}

func TestNormalizeRouteNoAllocs(t *testing.T) {
	dst := make([]byte, 0, 256)
	path := []byte("/api/v1/users/550e8400-e29b-41d4-a716-446655440000/orders/12345")
	if n := testing.AllocsPerRun(100, func() { dst = NormalizeRoute(dst[:0], path) }); n != 0 {
		t.Errorf("NormalizeRoute allocates %v times per call, want 0", n)
	}
}

func FuzzNormalizeRoute(f *testing.F) {
	for _, s := range []string{"/", "/api/v1/orders/12345", "//a", "http://x/y", "*", "/a.b.c.d", "/%40@.", "/x.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := NormalizeRoute(nil, []byte(path))
		if len(got) > maxRouteLen+4 {
			t.Fatalf("route of %q is %d bytes", path, len(got))
		}
		// Normalising a route again changes nothing.
		if again := NormalizeRoute(nil, got); string(again) != string(got) && !strings.HasSuffix(string(got), "...") {
			t.Fatalf("not idempotent: %q -> %q -> %q", path, got, again)
		}
	})
}
