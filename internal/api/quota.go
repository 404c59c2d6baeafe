package api

// Quota bounds what one namespace may hold, as Kubernetes' ResourceQuota
// does: a write that would take the namespace past one of its figures is
// refused, and nothing of it is stored. Unset figures take the defaults
// below; CPU and memory are unbounded unless set. Only cluster-admins
// write Namespaces, so a namespace's own admins cannot raise it.
type Quota struct {
	// Objects is the most Apps, Jobs and Secrets the namespace holds, all
	// kinds counted together (default DefaultQuotaObjects).
	Objects int32 `json:"objects,omitempty"`
	// Instances is the most instances the namespace's Apps and Jobs may
	// ask for: each App's replicas (an autoscaled App's autoscale.max),
	// each Job's parallelism (default DefaultQuotaInstances).
	Instances int32 `json:"instances,omitempty"`
	// Bytes is the most those objects may take in the store, as stored
	// ("16Mi"; default DefaultQuotaBytes).
	Bytes string `json:"bytes,omitempty"`
	// CPU and Memory are the most the namespace's instances may request
	// in all: replicas × the App's request, parallelism × the Job's.
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// Defaults of a Quota: room for `make up`'s examples many times over, but
// a bound on what one namespace can put into the store.
const (
	DefaultQuotaObjects   = 500
	DefaultQuotaInstances = 1000
	DefaultQuotaBytes     = 16 << 20
)

// QuotaAmounts are a namespace's figures as numbers. In a limit, zero
// MilliCPU or MemoryBytes means none.
type QuotaAmounts struct {
	Objects     int64 `json:"objects"`
	Instances   int64 `json:"instances"`
	Bytes       int64 `json:"bytes"`
	MilliCPU    int64 `json:"milliCPU"`
	MemoryBytes int64 `json:"memoryBytes"`
}

// QuotaUsage is what GET /api/v1/namespaces/NS/quota answers: what the
// namespace holds and what it may.
type QuotaUsage struct {
	Namespace string       `json:"namespace"`
	Used      QuotaAmounts `json:"used"`
	Limit     QuotaAmounts `json:"limit"`
}

// Limits are q's figures with the defaults filled in. Quantities were
// validated on the way in: one that does not parse counts as unset.
func (q Quota) Limits() QuotaAmounts {
	l := QuotaAmounts{Objects: DefaultQuotaObjects, Instances: DefaultQuotaInstances, Bytes: DefaultQuotaBytes}
	if q.Objects > 0 {
		l.Objects = int64(q.Objects)
	}
	if q.Instances > 0 {
		l.Instances = int64(q.Instances)
	}
	if b, err := ParseMemory(q.Bytes); err == nil && b > 0 {
		l.Bytes = b
	}
	l.MilliCPU, _ = ParseCPU(q.CPU)
	l.MemoryBytes, _ = ParseMemory(q.Memory)
	return l
}

// Limits on an Event: it explains, it does not carry data.
const (
	MaxEventMessageBytes = 1 << 10
	MaxEventBytes        = 4 << 10
)
