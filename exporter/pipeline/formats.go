package pipeline

import (
	"github.com/accesslog-exporter/accesslog-exporter/exporter/accesslog"
	"github.com/accesslog-exporter/accesslog-exporter/exporter/config"
)

// decoding is the compiled input section: what every worker's Decoder is
// built from, and the default vhost of each format.
type decoding struct {
	dc     accesslog.DecoderConfig
	vhosts map[*accesslog.Format]string
}

// compileInput compiles the input section with the config's own compiler,
// the one check-config runs, so that both accept and reject the same files.
func compileInput(cfg *config.Config) (*decoding, error) {
	in, err := cfg.CompileInput()
	if err != nil {
		return nil, err
	}
	return &decoding{dc: in.Decoder, vhosts: in.VHosts}, nil
}
