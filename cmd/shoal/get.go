package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shoal-dev/shoal/internal/api"
	"github.com/shoal-dev/shoal/internal/client"
	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newGetCmd(g *globals) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "get apps|instances|nodes|namespaces|events [NAME]",
		Short: "List objects, or show one",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			var objs []api.Object
			if len(args) == 2 {
				obj, err := c.Get(cmd.Context(), k, ns, args[1])
				if err != nil {
					return err
				}
				objs = []api.Object{obj}
				if g.output == "json" || g.output == "yaml" {
					return printObject(cmd.OutOrStdout(), obj, g.output)
				}
			} else {
				objs, _, err = c.List(cmd.Context(), k, ns, client.ListOptions{})
				if err != nil {
					return err
				}
			}
			return printList(cmd.Context(), cmd.OutOrStdout(), k, objs, g.output, all)
		},
	}
	cmd.Flags().StringVarP(&g.output, "output", "o", "table", "output format: table, wide, json, yaml or name")
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list across all namespaces")
	return cmd
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
			c = append(c, "PLACED", "CPU", "MEMORY", "PORTS", "SERVICE-IP")
		}
		return c
	case api.KindInstance:
		c := []string{"NAME", "APP", "PHASE", "READY", "NODE", "IP", "RESTARTS", "AGE", "MESSAGE"}
		if wide {
			c = append(c, "REVISION", "CONTAINER")
		}
		return c
	case api.KindNode:
		c := []string{"NAME", "READY", "INSTANCES", "CPU", "MEMORY", "AGE"}
		if wide {
			c = append(c, "ADDRESS", "LABELS", "MESSAGE")
		}
		return c
	case api.KindEvent:
		return []string{"TIME", "TYPE", "OBJECT", "REASON", "MESSAGE"}
	}
	return []string{"NAME", "AGE"}
}

func rowOf(o api.Object, wide bool) []string {
	m := o.GetMeta()
	age := age(m.CreatedAt)
	switch v := o.(type) {
	case *api.App:
		r := []string{m.Name, fmt.Sprintf("%d/%d", v.Status.Ready, replicas(v)), fmt.Sprintf("%d/%d", v.Status.Running, replicas(v)),
			fmt.Sprint(v.Status.Revision), dash(v.Status.Rollout), v.Spec.Image, age, dash(v.Status.Message)}
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
			r = append(r, fmt.Sprintf("%d/%d", v.Status.Placed, replicas(v)), dash(v.Spec.Resources.CPU), dash(v.Spec.Resources.Memory), dash(strings.Join(ports, ",")), dash(v.Status.ServiceIP))
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
		r := []string{m.Name, v.Spec.App, dash(phase), ready, dash(v.Spec.Node), dash(v.Status.IP), fmt.Sprint(v.Status.Restarts), age, dash(v.Status.Message)}
		if wide {
			id := v.Status.ContainerID
			r = append(r, fmt.Sprint(v.Spec.Revision), dash(id))
		}
		return r
	case *api.Node:
		ready := "NotReady"
		if v.Status.Ready {
			ready = "Ready"
		}
		r := []string{m.Name, ready, fmt.Sprint(v.Status.Instances),
			api.FormatMilliCPU(v.Status.Allocated.MilliCPU) + "/" + api.FormatMilliCPU(v.Status.Capacity.MilliCPU),
			api.FormatBytes(v.Status.Allocated.MemoryBytes) + "/" + api.FormatBytes(v.Status.Capacity.MemoryBytes), age}
		if wide {
			r = append(r, dash(v.Status.Address), dash(labelString(m.Labels)), dash(v.Status.Message))
		}
		return r
	case *api.Event:
		return []string{v.Time.Local().Format("15:04:05"), v.Type, v.Object, v.Reason, v.Message}
	}
	return []string{m.Name, age}
}

func replicas(a *api.App) int32 {
	if a.Spec.Replicas == nil {
		return 1
	}
	return *a.Spec.Replicas
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
