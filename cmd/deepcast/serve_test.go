package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"
)

func TestServeShutsDownGracefully(t *testing.T) {
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond) // an in-flight response
		w.Write([]byte("finished"))
	})
	base, stop := startServe(t, h)
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/")
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body <- string(b)
	}()
	<-started
	if err := stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if got := <-body; got != "finished" {
		t.Errorf("in-flight response: %q", got)
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("server still accepts connections after shutdown")
	}
	srv := newHTTPServer(h, slog.Default())
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 || srv.MaxHeaderBytes == 0 {
		t.Errorf("server without timeouts: %+v", srv)
	}
}
