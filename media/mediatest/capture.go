package mediatest

import (
	"bytes"
	"log/slog"
	"sync"
)

// Capture keeps what a server or a child process writes (its log, its
// output), safe for a test to read while the writing goes on.
type Capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *Capture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(p)
}

// String is what was written so far.
func (c *Capture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// Logger logs text lines into c.
func (c *Capture) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(c, nil)) }
