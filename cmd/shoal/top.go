package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
)

func newTopCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "top nodes|apps|instances",
		Short: "What nodes, apps and instances use now: CPU, memory (working set), processes, network bytes",
		Long: `Each agent reads its containers' cgroups every few seconds and publishes the
figures on its Node (status.usage); top sums them. CPU is the rate over the
last sample period; memory is the working set (in use, less the file cache
the kernel can take back); NET is the bytes received/sent since the
instance started.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"nodes", "apps", "instances"},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client(cmd.Context())
			if err != nil {
				return err
			}
			objs, _, err := c.List(cmd.Context(), api.MustKind(api.KindNode), "", client.ListOptions{})
			if err != nil {
				return err
			}
			nodes := make([]*api.Node, len(objs))
			for i, o := range objs {
				nodes[i] = o.(*api.Node)
			}
			ns := g.namespace
			if all {
				ns = ""
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			switch args[0] {
			case "nodes", "node", "no":
				topNodes(w, nodes)
			case "apps", "app":
				topApps(w, nodes, ns)
			case "instances", "instance", "in":
				topInstances(w, nodes, ns)
			default:
				return fmt.Errorf("top %q: use nodes, apps or instances", args[0])
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "apps and instances of every namespace")
	return cmd
}

func percent(n, of int64) string {
	if of <= 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", n*100/of)
}

func topNodes(w io.Writer, nodes []*api.Node) {
	fmt.Fprintln(w, "NAME\tCPU\tCPU%\tMEMORY\tMEMORY%\tINSTANCES\tSAMPLED")
	for _, n := range nodes {
		st := &n.Status
		alloc := n.Allocatable()
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.Metadata.Name, api.FormatMilliCPU(st.Used.MilliCPU), percent(st.Used.MilliCPU, alloc.MilliCPU),
			api.FormatBytes(st.Used.MemoryBytes), percent(st.Used.MemoryBytes, alloc.MemoryBytes), len(st.Usage), sampled(st.UsageAt))
	}
}

func sampled(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return age(t) + " ago"
}

func topApps(w io.Writer, nodes []*api.Node, ns string) {
	type sum struct {
		ns, owner      string
		n              int
		cpu, mem, pids int64
		rx, tx         int64
	}
	sums := map[string]*sum{}
	for _, n := range nodes {
		for _, u := range n.Status.Usage {
			if ns != "" && u.Namespace != ns {
				continue
			}
			owner := "app/" + u.App
			if u.Job != "" {
				owner = "job/" + u.Job
			}
			k := u.Namespace + "/" + owner
			s := sums[k]
			if s == nil {
				s = &sum{ns: u.Namespace, owner: owner}
				sums[k] = s
			}
			s.n++
			s.cpu, s.mem, s.pids = s.cpu+u.MilliCPU, s.mem+u.MemoryBytes, s.pids+u.Pids
			s.rx, s.tx = s.rx+u.RxBytes, s.tx+u.TxBytes
		}
	}
	keys := make([]string, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w, "NAMESPACE\tNAME\tINSTANCES\tCPU\tMEMORY\tPIDS\tNET RX/TX")
	for _, k := range keys {
		s := sums[k]
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%d\t%s/%s\n", s.ns, s.owner, s.n, api.FormatMilliCPU(s.cpu), api.FormatBytes(s.mem), s.pids,
			api.FormatBytes(s.rx), api.FormatBytes(s.tx))
	}
}

func topInstances(w io.Writer, nodes []*api.Node, ns string) {
	type row struct {
		node string
		u    api.InstanceUsage
	}
	var rows []row
	for _, n := range nodes {
		for _, u := range n.Status.Usage {
			if ns == "" || u.Namespace == ns {
				rows = append(rows, row{n.Metadata.Name, u})
			}
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		return rows[i].u.Namespace+"/"+rows[i].u.Instance < rows[j].u.Namespace+"/"+rows[j].u.Instance
	})
	fmt.Fprintln(w, "NAMESPACE\tNAME\tNODE\tCPU\tMEMORY\tPIDS\tNET RX/TX")
	for _, r := range rows {
		u := r.u
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s/%s\n", u.Namespace, u.Instance, r.node, api.FormatMilliCPU(u.MilliCPU), api.FormatBytes(u.MemoryBytes), u.Pids,
			api.FormatBytes(u.RxBytes), api.FormatBytes(u.TxBytes))
	}
}
