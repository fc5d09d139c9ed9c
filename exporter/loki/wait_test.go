package loki

import (
	"context"
	"time"
)

// wait returns once every line added so far is done with (acknowledged,
// rejected or dropped), or when ctx ends.
func (c *Client) wait(ctx context.Context) error {
	c.Flush()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for c.outstanding.Load() > 0 || c.InflightBytes() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
