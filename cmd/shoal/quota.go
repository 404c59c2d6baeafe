package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// getQuota prints what a namespace (-n), or every namespace (-A), holds
// against its quota, as the server counts it.
func getQuota(cmd *cobra.Command, g *globals, all bool) error {
	c, err := g.client(cmd.Context())
	if err != nil {
		return err
	}
	names := []string{g.namespace}
	if all {
		nss, _, err := c.List(cmd.Context(), api.MustKind(api.KindNamespace), "", client.ListOptions{})
		if err != nil {
			return err
		}
		names = names[:0]
		for _, ns := range nss {
			names = append(names, ns.GetMeta().Name)
		}
	}
	var qs []*api.QuotaUsage
	for _, ns := range names {
		q, err := c.Quota(cmd.Context(), ns)
		if err != nil {
			return err
		}
		qs = append(qs, q)
	}
	switch g.output {
	case "json":
		return printJSON(qs)
	case "yaml":
		j, err := json.Marshal(qs)
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
	return printQuotas(cmd.OutOrStdout(), qs)
}

// printQuotas writes one line per namespace: each figure as used/limit.
func printQuotas(w io.Writer, qs []*api.QuotaUsage) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tOBJECTS\tINSTANCES\tBYTES\tCPU\tMEMORY")
	for _, q := range qs {
		u, l := q.Used, q.Limit
		fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\t%s/%s\t%s/%s\t%s/%s\n", q.Namespace,
			u.Objects, l.Objects, u.Instances, l.Instances,
			api.FormatBytes(u.Bytes), api.FormatBytes(l.Bytes),
			api.FormatMilliCPU(u.MilliCPU), orNone(l.MilliCPU, api.FormatMilliCPU),
			api.FormatBytes(u.MemoryBytes), orNone(l.MemoryBytes, api.FormatBytes))
	}
	return tw.Flush()
}

// orNone writes a limit, or "-" for none.
func orNone(n int64, format func(int64) string) string {
	if n == 0 {
		return "-"
	}
	return format(n)
}
