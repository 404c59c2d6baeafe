package netproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/testutil"
)

// dropper accepts connections, reads the request and closes without a
// byte of answer: an instance dying with the request in flight.
func dropper(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = bufio.NewReader(c).ReadString('\n')
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestIdempotentRequestsAreReplayedOnAnotherInstance(t *testing.T) {
	var posts int
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			posts++
		}
		fmt.Fprint(w, "good")
	}))
	t.Cleanup(good.Close)
	pub := testutil.FreePort(t)
	p, err := newProxy(Config{BridgeIP: "127.0.0.1", Bridge: "lo", DNSPort: testutil.FreePort(t), PublishAddress: "127.0.0.1", PortRange: anyPort, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	app := testApp("default", "web", "", 8080, int32(pub))
	bad := testInstance("default", "web", "web-a", dropper(t))
	ok := testInstance("default", "web", "web-b", strings.TrimPrefix(good.URL, "http://"))
	p.apply(loopbackNodes, []*api.App{app}, []*api.Instance{bad, ok})
	startProxy(t, p)
	addr := "127.0.0.1:" + strconv.Itoa(pub)
	waitDial(t, addr)

	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 20; i++ {
		resp, err := cl.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("GET %d failed though another instance was ready: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "good" {
			t.Fatalf("GET %d answered %q", i, b)
		}
	}
	// A POST is never replayed: some of them fail, and none is sent twice.
	failed := 0
	for i := 0; i < 20; i++ {
		resp, err := cl.Post("http://"+addr+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			failed++
			continue
		}
		resp.Body.Close()
	}
	if failed+posts != 20 {
		t.Fatalf("20 POSTs: %d failed and %d reached the good instance; a POST was replayed or lost", failed, posts)
	}
}
