package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The embedded etcd's own counters (Prometheus, its default registry):
// keys put and deleted, the bytes of the keys and values put, and the
// bytes appended to its write-ahead log.
const (
	metricPuts     = "etcd_mvcc_put_total"
	metricDeletes  = "etcd_mvcc_delete_total"
	metricPutBytes = "etcd_debugging_mvcc_total_put_size_in_bytes"
	metricWALBytes = "etcd_disk_wal_write_bytes_total"
)

// etcdCounters is one sample of those counters.
type etcdCounters struct {
	at                                time.Time
	puts, deletes, putBytes, walBytes float64
}

// writeRate is what etcd wrote per second between two samples.
type writeRate struct {
	window                     time.Duration
	writes, putBytes, walBytes float64 // per second
	avgPut                     float64 // bytes per put
}

func rateBetween(a, b etcdCounters) writeRate {
	w := b.at.Sub(a.at)
	s := w.Seconds()
	r := writeRate{window: w}
	if s <= 0 {
		return r
	}
	puts := b.puts - a.puts
	r.writes = (puts + b.deletes - a.deletes) / s
	r.putBytes = (b.putBytes - a.putBytes) / s
	r.walBytes = (b.walBytes - a.walBytes) / s
	if puts > 0 {
		r.avgPut = (b.putBytes - a.putBytes) / puts
	}
	return r
}

func (r writeRate) String() string {
	return fmt.Sprintf("%.0f writes/s, %.1f KiB/s (keys and values put, %.0f B a put; WAL %.1f KiB/s; over %.0f s)",
		r.writes, r.putBytes/1024, r.avgPut, r.walBytes/1024, r.window.Seconds())
}

// scrapeEtcd reads the counters from a Prometheus text endpoint.
func scrapeEtcd(ctx context.Context, url string) (etcdCounters, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return etcdCounters{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return etcdCounters{}, fmt.Errorf("etcd metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return etcdCounters{}, fmt.Errorf("etcd metrics at %s: %s", url, resp.Status)
	}
	c, err := parseEtcdCounters(resp.Body)
	if err != nil {
		return etcdCounters{}, fmt.Errorf("etcd metrics at %s: %w", url, err)
	}
	c.at = time.Now()
	return c, nil
}

// parseEtcdCounters picks the counters out of Prometheus' text format;
// each is one unlabelled sample ("name value").
func parseEtcdCounters(r io.Reader) (etcdCounters, error) {
	var c etcdCounters
	want := map[string]*float64{metricPuts: &c.puts, metricDeletes: &c.deletes, metricPutBytes: &c.putBytes, metricWALBytes: &c.walBytes}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		p, ok := want[f[0]]
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return c, fmt.Errorf("%s: value %q: %w", f[0], f[1], err)
		}
		*p = v
		seen[f[0]] = true
	}
	if err := sc.Err(); err != nil {
		return c, err
	}
	for _, name := range []string{metricPuts, metricDeletes, metricPutBytes, metricWALBytes} {
		if !seen[name] {
			return c, fmt.Errorf("no %s", name)
		}
	}
	return c, nil
}
