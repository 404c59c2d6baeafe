package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newGetCmd(g *globals) *cobra.Command {
	var (
		all, watch, reveal bool
		selector           string
	)
	cmd := &cobra.Command{
		Use:   "get apps|instances|nodes|namespaces|events|secrets|tokens|users|servers|quota [NAME] [-l key=value] [-w]",
		Short: "List objects, or show one; -w follows changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] == "servers" || args[0] == "server" {
				return getServers(cmd, g)
			}
			if args[0] == "quota" || args[0] == "quotas" {
				return getQuota(cmd, g, all)
			}
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			ns := g.namespace
			if all {
				ns = ""
			}
			if selector != "" && len(args) == 2 {
				return fmt.Errorf("get: give a NAME or a -l selector, not both")
			}
			opts := client.ListOptions{Labels: selector}
			var objs []api.Object
			var rev int64
			if reveal && (len(args) != 2 || watch || k.Kind != api.KindSecret) {
				return fmt.Errorf("--reveal shows one Secret: get secret NAME --reveal")
			}
			if len(args) == 2 && !watch {
				get := c.Get
				if reveal {
					get = c.Reveal
				}
				obj, err := get(cmd.Context(), k, ns, args[1])
				if err != nil {
					return err
				}
				objs = []api.Object{obj}
				if g.output == "json" || g.output == "yaml" {
					return printObject(cmd.OutOrStdout(), obj, g.output)
				}
			} else {
				objs, rev, err = c.List(cmd.Context(), k, ns, opts)
				if err != nil {
					return err
				}
				if len(args) == 2 {
					objs = slices.DeleteFunc(objs, func(o api.Object) bool { return o.GetMeta().Name != args[1] })
				}
			}
			if !watch {
				if g.output == "wide" && (k.Kind == api.KindInstance || k.Kind == api.KindApp) {
					// The figures agents publish on their Nodes.
					if nodes, _, err := c.List(cmd.Context(), api.MustKind(api.KindNode), "", client.ListOptions{}); err == nil {
						usageIndex = indexUsage(nodes)
					}
				}
				return printList(cmd.Context(), cmd.OutOrStdout(), k, objs, g.output, all)
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			return watchList(cmd.Context(), c, k, ns, name, opts, objs, rev, g.output, all, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&g.output, "output", "o", "table", "output format: table, wide, json, yaml or name")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	cmd.Flags().StringVarP(&selector, "selector", "l", "", "only objects with these labels: key=value[,key2!=value2]")
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "after the list, print each change as it happens (until interrupted)")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "show a Secret's values (admins only; otherwise they read <redacted>)")
	return cmd
}

// getServers prints the cluster's servers: name, API URL, status and
// which one runs the controllers.
func getServers(cmd *cobra.Command, g *globals) error {
	c, err := g.client(cmd.Context())
	if err != nil {
		return err
	}
	list, err := c.ListServers(cmd.Context())
	if err != nil {
		return err
	}
	switch g.output {
	case "json":
		return printJSON(list)
	case "yaml":
		j, err := json.Marshal(list)
		if err != nil {
			return err
		}
		b, err := yaml.JSONToYAML(j)
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(b)
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
	// No etcd peer URLs: the API shows them to servers only.
	fmt.Fprintln(tw, "NAME\tSTATUS\tLEADER\tURL\tVERSION")
	for _, s := range list.Items {
		leader := ""
		if s.Leader {
			leader = "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", dash(s.Name), s.Status, leader, dash(s.URL), dash(s.Version))
	}
	return tw.Flush()
}

// watchList prints objs, then one line (or document) per change after rev,
// as kubectl get -w does, until ctx ends. A broken watch lists again and
// goes on from there.
func watchList(ctx context.Context, c *client.Client, k api.KindInfo, ns, name string, opts client.ListOptions, objs []api.Object, rev int64,
	format string, allNS bool, w io.Writer) error {
	p, err := newRowPrinter(w, k, format, allNS)
	if err != nil {
		return err
	}
	for _, o := range objs {
		p.print(o, "")
	}
	for ctx.Err() == nil {
		events, werr, err := c.Watch(ctx, k, ns, rev, opts)
		if err != nil {
			return err
		}
		for ev := range events {
			rev = max(rev, ev.Revision)
			if ev.Object == nil || (name != "" && ev.Object.GetMeta().Name != name) {
				continue
			}
			mark := ""
			if ev.Type == api.WatchDeleted {
				mark = "deleted"
			}
			p.print(ev.Object, mark)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := werr(); err != nil && !client.Expired(err) {
			return fmt.Errorf("watch: %w", err)
		}
		// Expired: list again and print what changed meanwhile as current.
		objs, rev, err = c.List(ctx, k, ns, opts)
		if err != nil {
			return err
		}
		for _, o := range objs {
			if name == "" || o.GetMeta().Name == name {
				p.print(o, "")
			}
		}
	}
	return nil
}

// rowPrinter prints objects one at a time: table rows under one header,
// or one JSON/YAML document each.
type rowPrinter struct {
	w      io.Writer
	k      api.KindInfo
	format string
	allNS  bool
	header bool
}

func newRowPrinter(w io.Writer, k api.KindInfo, format string, allNS bool) (*rowPrinter, error) {
	switch format {
	case "table", "wide", "", "json", "yaml", "name":
	default:
		return nil, fmt.Errorf("unknown output format %q: use table, wide, json, yaml or name", format)
	}
	return &rowPrinter{w: w, k: k, format: format, allNS: allNS}, nil
}

// print writes o; mark ("deleted") is added to a table row.
func (p *rowPrinter) print(o api.Object, mark string) {
	switch p.format {
	case "json", "yaml":
		if p.format == "yaml" {
			fmt.Fprintln(p.w, "---")
		}
		_ = printObject(p.w, o, p.format)
		return
	case "name":
		fmt.Fprintf(p.w, "%s/%s\n", lower(string(p.k.Kind)), o.GetMeta().Name)
		return
	}
	wide := p.format == "wide"
	cols := columns(p.k.Kind, wide)
	row := rowOf(o, wide)
	if p.allNS && p.k.Namespaced {
		cols = append([]string{"NAMESPACE"}, cols...)
		row = append([]string{o.GetMeta().Namespace}, row...)
	}
	if mark != "" {
		row[0] += " (" + mark + ")"
	}
	// Without a tabwriter spanning lines (rows arrive over time), pad to
	// the header's widths so columns mostly line up.
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = max(len(c), 8)
		if i == 0 {
			widths[i] = 28
		}
	}
	line := func(cells []string) string {
		var b strings.Builder
		for i, c := range cells {
			if i > 0 {
				b.WriteString("   ")
			}
			if i < len(cells)-1 {
				fmt.Fprintf(&b, "%-*s", widths[i], c)
			} else {
				b.WriteString(c)
			}
		}
		return strings.TrimRight(b.String(), " ")
	}
	if !p.header {
		fmt.Fprintln(p.w, line(cols))
		p.header = true
	}
	fmt.Fprintln(p.w, line(row))
}

func lookupKind(s string) (api.KindInfo, error) {
	k, ok := api.LookupKind(s)
	if !ok {
		k, ok = api.LookupKind(s + "s")
	}
	if !ok {
		return k, fmt.Errorf("unknown kind %q: use apps, instances, nodes, namespaces or events", s)
	}
	return k, nil
}

func printObject(w io.Writer, obj api.Object, format string) error {
	b, err := api.Encode(obj, format)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func printList(_ context.Context, w io.Writer, k api.KindInfo, objs []api.Object, format string, allNS bool) error {
	switch format {
	case "json":
		return printJSON(map[string]any{"items": objs})
	case "yaml":
		j, err := json.Marshal(map[string]any{"items": objs})
		if err != nil {
			return err
		}
		b, err := yaml.JSONToYAML(j)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "name":
		for _, o := range objs {
			fmt.Fprintf(w, "%s/%s\n", lower(string(k.Kind)), o.GetMeta().Name)
		}
		return nil
	case "table", "wide", "":
	default:
		return fmt.Errorf("unknown output format %q: use table, wide, json, yaml or name", format)
	}
	wide := format == "wide"
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	defer tw.Flush()
	cols := columns(k.Kind, wide)
	if allNS && k.Namespaced {
		cols = append([]string{"NAMESPACE"}, cols...)
	}
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	for _, o := range objs {
		row := rowOf(o, wide)
		if allNS && k.Namespaced {
			row = append([]string{o.GetMeta().Namespace}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if len(objs) == 0 {
		fmt.Fprintln(os.Stderr, "no "+k.Plural+" found")
	}
	return nil
}

func columns(k api.Kind, wide bool) []string {
	switch k {
	case api.KindApp:
		c := []string{"NAME", "READY", "RUNNING", "REVISION", "ROLLOUT", "IMAGE", "AGE", "MESSAGE"}
		if wide {
			c = append(c, "PLACED", "CPU", "MEMORY", "PORTS", "SERVICE-IP", "CPU-USED", "MEM-USED")
		}
		return c
	case api.KindInstance:
		c := []string{"NAME", "APP", "PHASE", "READY", "NODE", "IP", "RESTARTS", "AGE", "MESSAGE"}
		if wide {
			c = append(c, "REVISION", "CONTAINER", "CPU-USED", "MEM-USED")
		}
		return c
	case api.KindNode:
		c := []string{"NAME", "READY", "INSTANCES", "CPU", "MEMORY", "AGE"}
		if wide {
			c = append(c, "ADDRESS", "LABELS", "MESSAGE", "CPU-USED", "MEM-USED")
		}
		return c
	case api.KindEvent:
		return []string{"TIME", "TYPE", "OBJECT", "REASON", "MESSAGE"}
	case api.KindSecret:
		return []string{"NAME", "KEYS", "VERSION", "AGE"}
	case api.KindToken:
		return []string{"NAME", "ROLE", "EXPIRES", "DESCRIPTION"}
	case api.KindUser:
		return []string{"NAME", "ROLES", "AGE"}
	case api.KindJob:
		c := []string{"NAME", "STATE", "COMPLETIONS", "ACTIVE", "FAILED", "SCHEDULE", "LAST", "NEXT", "AGE", "MESSAGE"}
		if wide {
			c = append(c, "IMAGE", "DURATION")
		}
		return c
	}
	return []string{"NAME", "AGE"}
}

// rowOf is o's table row, each cell one line that cannot steer a
// terminal (term.go).
func rowOf(o api.Object, wide bool) []string { return escapeCells(rawRowOf(o, wide)) }

func rawRowOf(o api.Object, wide bool) []string {
	m := o.GetMeta()
	age := age(m.CreatedAt)
	switch v := o.(type) {
	case *api.Job:
		st := &v.Status
		comp := fmt.Sprintf("%d/%d", st.Succeeded, deref32(v.Spec.Completions, 1))
		msg := st.Message
		if st.Reason != "" {
			msg = st.Reason + ": " + msg
		}
		if v.Spec.Schedule != "" {
			comp = "-"
			if st.Missed > 0 {
				msg = strings.TrimPrefix(msg+fmt.Sprintf("; %d ticks missed", st.Missed), "; ")
			}
		}
		when := func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.Local().Format("01-02 15:04:05")
		}
		r := []string{m.Name, dash(string(st.State)), comp, fmt.Sprint(st.Active), fmt.Sprint(st.Failed), dash(v.Spec.Schedule),
			when(st.LastScheduleTime), when(st.NextScheduleTime), age, dash(msg)}
		if wide {
			d := "-"
			if !st.StartTime.IsZero() && !st.CompletionTime.IsZero() {
				d = st.CompletionTime.Sub(st.StartTime).Round(time.Second).String()
			}
			r = append(r, shortImage(v.Spec.Image), d)
		}
		return r
	case *api.App:
		r := []string{m.Name, fmt.Sprintf("%d/%d", v.Status.Ready, replicas(v)), fmt.Sprintf("%d/%d", v.Status.Running, replicas(v)),
			fmt.Sprint(v.Status.Revision), dash(v.Status.Rollout), shortImage(v.Spec.Image), age, dash(v.Status.Message)}
		if wide {
			var ports []string
			for _, p := range v.Spec.Ports {
				s := fmt.Sprint(p.ContainerPort)
				if p.HostPort != 0 {
					s = fmt.Sprintf("%d:%d", p.HostPort, p.ContainerPort)
				}
				s += "/" + strings.ToLower(string(p.Protocol))
				if p.Publish != 0 {
					s += fmt.Sprintf(" (published %d)", p.Publish)
				}
				ports = append(ports, s)
			}
			req, lim := v.Spec.Resources.Request(), v.Spec.Resources.Limit()
			u := usageIndex.app(m.Namespace, m.Name)
			r = append(r, fmt.Sprintf("%d/%d", v.Status.Placed, replicas(v)), reqLim(req.MilliCPU, lim.MilliCPU, api.FormatMilliCPU), reqLim(req.MemoryBytes, lim.MemoryBytes, api.FormatBytes), dash(strings.Join(ports, ",")), dash(v.Status.ServiceIP),
				u.cpu(), u.mem())
		}
		return r
	case *api.Instance:
		phase := string(v.Status.Phase)
		if !m.DeletedAt.IsZero() {
			phase = string(api.PhaseTerminating)
		}
		ready := "no"
		if v.Status.Ready {
			ready = "yes"
		}
		owner := v.Spec.App
		if v.Spec.Job != "" {
			owner = "job/" + v.Spec.Job
		}
		r := []string{m.Name, owner, dash(phase), ready, dash(v.Spec.Node), dash(v.Status.IP), fmt.Sprint(v.Status.Restarts), age, dash(v.Status.Message)}
		if wide {
			id := v.Status.ContainerID
			u := usageIndex.instance(m.Namespace, m.Name)
			r = append(r, fmt.Sprint(v.Spec.Revision), dash(id), u.cpu(), u.mem())
		}
		return r
	case *api.Node:
		ready := "NotReady"
		if v.Status.Ready {
			ready = "Ready"
		}
		// Requested of allocatable (capacity less the owner's reserve).
		alloc := v.Allocatable()
		r := []string{m.Name, ready, fmt.Sprint(v.Status.Instances),
			api.FormatMilliCPU(v.Status.Allocated.MilliCPU) + "/" + api.FormatMilliCPU(alloc.MilliCPU),
			api.FormatBytes(v.Status.Allocated.MemoryBytes) + "/" + api.FormatBytes(alloc.MemoryBytes), age}
		if wide {
			r = append(r, dash(v.Status.Address), dash(labelString(m.Labels)), dash(v.Status.Message),
				api.FormatMilliCPU(v.Status.Used.MilliCPU), api.FormatBytes(v.Status.Used.MemoryBytes))
		}
		return r
	case *api.Event:
		return []string{v.Time.Local().Format("15:04:05"), v.Type, v.Object, v.Reason, v.Message}
	case *api.Secret:
		return []string{m.Name, strings.Join(v.SecretKeys(), ","), fmt.Sprint(v.Status.Version), age}
	case *api.Token:
		return []string{m.Name, string(v.Spec.Role), v.Spec.ExpiresAt.UTC().Format(time.RFC3339), dash(v.Spec.Description)}
	case *api.User:
		var roles []string
		for _, b := range v.Spec.Roles {
			if b.Namespace == "" {
				roles = append(roles, string(b.Role))
			} else {
				roles = append(roles, string(b.Role)+"@"+b.Namespace)
			}
		}
		return []string{m.Name, dash(strings.Join(roles, ",")), age}
	}
	return []string{m.Name, age}
}

func replicas(a *api.App) int32 {
	if a.Spec.Replicas == nil {
		return 1
	}
	return *a.Spec.Replicas
}

// shortImage shows a pinned image with its digest cut to 12 digits, as
// docker shows image IDs: "shoal.local/hello:v1@sha256:76ca062d082c".
// -o json and -o yaml show the whole digest.
func shortImage(image string) string {
	if d := api.ImageDigest(image); d != "" {
		return image[:len(image)-len(d)] + d[:len("sha256:")+12]
	}
	return image
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func deref32(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}

// reqLim shows a request and its limit: "250m/500m", "250m" when equal,
// "250m/-" with no limit.
func reqLim(req, lim int64, format func(int64) string) string {
	f := func(n int64) string {
		if n == 0 {
			return "-"
		}
		return format(n)
	}
	if req == lim {
		return f(req)
	}
	return f(req) + "/" + f(lim)
}

// usageFigures are summed usage figures, or none (shown as "-").
type usageFigures struct {
	ok                 bool
	milliCPU, memBytes int64
}

func (u usageFigures) cpu() string {
	if !u.ok {
		return "-"
	}
	return api.FormatMilliCPU(u.milliCPU)
}

func (u usageFigures) mem() string {
	if !u.ok {
		return "-"
	}
	return api.FormatBytes(u.memBytes)
}

// usageByName indexes the Nodes' published usage by namespace/instance
// and namespace/app.
type usageByName struct{ inst, apps map[string]usageFigures }

func (x usageByName) instance(ns, name string) usageFigures { return x.inst[ns+"/"+name] }
func (x usageByName) app(ns, name string) usageFigures      { return x.apps[ns+"/"+name] }

// usageIndex is filled by get -o wide before it prints instances or apps.
var usageIndex usageByName

func indexUsage(nodes []api.Object) usageByName {
	x := usageByName{inst: map[string]usageFigures{}, apps: map[string]usageFigures{}}
	for _, o := range nodes {
		for _, u := range o.(*api.Node).Status.Usage {
			x.inst[u.Namespace+"/"+u.Instance] = usageFigures{true, u.MilliCPU, u.MemoryBytes}
			if u.App != "" {
				a := x.apps[u.Namespace+"/"+u.App]
				a.ok, a.milliCPU, a.memBytes = true, a.milliCPU+u.MilliCPU, a.memBytes+u.MemoryBytes
				x.apps[u.Namespace+"/"+u.App] = a
			}
		}
	}
	return x
}
