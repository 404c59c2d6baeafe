package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/store/storetest"
)

func TestParseEtcdCounters(t *testing.T) {
	text := `# HELP etcd_mvcc_put_total Total number of puts seen by this member.
# TYPE etcd_mvcc_put_total counter
etcd_mvcc_put_total 1200
etcd_mvcc_delete_total 3
etcd_mvcc_put_total_other 9
etcd_debugging_mvcc_total_put_size_in_bytes 4.5e+06
etcd_disk_wal_write_bytes_total 8e+06
`
	c, err := parseEtcdCounters(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if c.puts != 1200 || c.deletes != 3 || c.putBytes != 4.5e6 || c.walBytes != 8e6 {
		t.Errorf("got %+v, want puts 1200, deletes 3, put bytes 4.5e6, WAL bytes 8e6", c)
	}
	if _, err := parseEtcdCounters(strings.NewReader("etcd_mvcc_put_total 1\n")); err == nil || !strings.Contains(err.Error(), "no etcd_mvcc_delete_total") {
		t.Errorf("a missing counter: got %v, want it named", err)
	}
	if _, err := parseEtcdCounters(strings.NewReader("etcd_mvcc_put_total x\n")); err == nil || !strings.Contains(err.Error(), `etcd_mvcc_put_total: value "x"`) {
		t.Errorf("a bad value: got %v, want the counter and value named", err)
	}
}

func TestRateBetween(t *testing.T) {
	t0 := time.Now()
	r := rateBetween(etcdCounters{at: t0, puts: 100, deletes: 10, putBytes: 1000, walBytes: 5000},
		etcdCounters{at: t0.Add(10 * time.Second), puts: 300, deletes: 20, putBytes: 21480, walBytes: 25480})
	if r.writes != 21 || r.putBytes != 2048 || r.walBytes != 2048 || r.avgPut != 102.4 {
		t.Errorf("got %+v, want 21 writes/s, 2048 B/s put, 2048 B/s WAL, 102.4 B a put", r)
	}
	if got := r.String(); !strings.HasPrefix(got, "21 writes/s, 2.0 KiB/s") {
		t.Errorf("String() = %q, want it to start with the writes and KiB per second", got)
	}
}

// The counters are the embedded etcd's own, under the names this etcd
// version gives them: objects written through the store show up in them.
func TestEtcdCountersCountStoreWrites(t *testing.T) {
	st, _ := storetest.Start(t)
	srv := httptest.NewServer(promhttp.Handler())
	defer srv.Close()
	ctx := context.Background()
	a, err := scrapeEtcd(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	const n = 10
	for i := range n {
		ns := &api.Namespace{TypeMeta: api.TypeMeta{APIVersion: api.Version, Kind: api.KindNamespace}, Metadata: api.ObjectMeta{Name: fmt.Sprintf("ns-%d", i)}}
		if err := st.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	b, err := scrapeEtcd(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if puts := b.puts - a.puts; puts < n {
		t.Errorf("%v puts counted for %d objects created", puts, n)
	}
	if bytes := b.putBytes - a.putBytes; bytes < n*20 {
		t.Errorf("%v bytes put counted for %d objects created", bytes, n)
	}
	if b.walBytes <= a.walBytes {
		t.Errorf("WAL bytes %v then %v: want them to grow", a.walBytes, b.walBytes)
	}
}
