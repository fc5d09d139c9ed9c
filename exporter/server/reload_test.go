package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReloadEndpoint(t *testing.T) {
	var fail error
	calls := 0
	s := New(Config{Reload: func() error { calls++; return fail }}, prometheus.NewRegistry(), nil, nil)
	do := func(method string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(method, "/-/reload", nil))
		return rec
	}
	if rec := do(http.MethodPost); rec.Code != 200 || calls != 1 {
		t.Errorf("POST: %d after %d calls, want 200 after 1", rec.Code, calls)
	}
	fail = errors.New(`exporter.yml:4: metrics.labels[1]: unknown label "stauts"`)
	if rec := do(http.MethodPut); rec.Code != 500 || !strings.Contains(rec.Body.String(), "exporter.yml:4: metrics.labels[1]") {
		t.Errorf("PUT with a bad config: %d %q, want 500 naming the file and field", rec.Code, rec.Body.String())
	}
	if rec := do(http.MethodGet); rec.Code != http.StatusMethodNotAllowed || calls != 2 {
		t.Errorf("GET: %d after %d calls, want 405 without reloading", rec.Code, calls)
	}
	off := New(Config{}, prometheus.NewRegistry(), nil, nil)
	rec := httptest.NewRecorder()
	off.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/-/reload", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("without --web.enable-lifecycle: %d, want 404", rec.Code)
	}
}
