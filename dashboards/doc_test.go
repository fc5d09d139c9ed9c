package dashboards

import (
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

func TestParserLinks(t *testing.T) {
	if _, err := parser.NewParser(parser.Options{}).ParseExpr("up"); err != nil {
		t.Fatal(err)
	}
}
