//! Who this process is in a cluster: its pod's namespace and a unique
//! identity for leader election. Read once at start-up; control plane.

/// The pod's namespace: `$POD_NAMESPACE` (the downward API), else the
/// service account's namespace file; `None` outside a pod.
pub(crate) fn namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
                .ok()
                .map(|n| n.trim().to_owned())
        })
        .filter(|n| !n.is_empty())
}

/// `$POD_NAME` or the host name (else `fallback`), plus `_` and a random
/// suffix (client-go's `hostname_uuid` convention), so two processes never
/// share an identity in a Lease.
pub(crate) fn identity(fallback: &str) -> String {
    let base = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| fallback.to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut state = (nanos as u64) ^ (u64::from(std::process::id()) << 32) | 1;
    // xorshift64: a suffix, not a secret.
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    format!("{base}_{state:016x}")
}
