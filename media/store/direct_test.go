package store

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"
	"time"
)

// TestDirectBodyWakesForEveryByte: a body that arrives in bursts with
// pauses, whose last bytes are fewer than the copy's wake-up step, is
// copied whole and at once, by WriteTo to a TCP socket (splice) and to a
// buffer, and the connection then reads the next answer's header without
// waiting for a step's worth of bytes.
func TestDirectBodyWakesForEveryByte(t *testing.T) {
	const size = wakeChunk + wakeChunk/2 + 1000
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
	// The store: every answer in three bursts with pauses between them,
	// on one keep-alive connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if readHead(br) == "" {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
			for _, cut := range [][2]int{{0, 100 << 10}, {100 << 10, wakeChunk + 50<<10}, {wakeChunk + 50<<10, size}} {
				c.Write(body[cut[0]:cut[1]])
				time.Sleep(150 * time.Millisecond)
			}
		}
	}()
	// A sink for the spliced copy, reading everything it is sent.
	sinkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sinkLn.Close()
	sunk := make(chan []byte, 1)
	go func() {
		c, err := sinkLn.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, size))
		sunk <- b
	}()
	sink, err := net.Dial("tcp", sinkLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	s := &S3{}
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The timeout is what a stalled copy would wait for: 5 s, against
	// the 450 ms the bursts take.
	for i, dst := range []io.Writer{sink, new(bytes.Buffer)} {
		start := time.Now()
		b, err := s.exchange(ctx, conn.(*net.TCPConn), "GET /o HTTP/1.1\r\nHost: store\r\n\r\n", "o", 5*time.Second)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		n, err := b.WriteTo(dst)
		if err != nil || n != size {
			t.Fatalf("answer %d: %d of %d bytes, %v", i, n, size, err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("answer %d took %v: the copy waited for bytes that never came", i, took)
		}
		switch d := dst.(type) {
		case *bytes.Buffer:
			if !bytes.Equal(d.Bytes(), body) {
				t.Errorf("answer %d: the copy differs", i)
			}
		default:
			if got := <-sunk; !bytes.Equal(got, body) {
				t.Errorf("answer %d: the spliced copy differs (%d bytes)", i, len(got))
			}
		}
		if b.rest != 0 || len(b.buffered) != 0 {
			t.Fatalf("answer %d: %d bytes left", i, b.rest)
		}
		b.stop()
	}
}

// readHead reads one request's header block; "" at the end of the stream.
func readHead(br *bufio.Reader) string {
	var head string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return ""
		}
		head += line
		if line == "\r\n" {
			return head
		}
	}
}
