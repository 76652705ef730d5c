//! The planner against external-dns v0.22's worked example and rules.

use super::*;

fn a(name: &str, targets: &[&str]) -> Endpoint {
    Endpoint::new(
        name,
        RecordType::A,
        targets.iter().map(|t| (*t).to_owned()).collect(),
    )
}

fn typed(name: &str, record_type: RecordType, targets: &[&str]) -> Endpoint {
    Endpoint::new(
        name,
        record_type,
        targets.iter().map(|t| (*t).to_owned()).collect(),
    )
}

fn config(policy: Policy) -> PlanConfig {
    PlanConfig {
        policy,
        domain_filter: DomainFilter::default(),
        managed: ManagedTypes::default(),
        owner_id: "default".to_owned(),
        old_owner_id: String::new(),
    }
}

fn names(endpoints: &[Endpoint]) -> Vec<String> {
    endpoints
        .iter()
        .map(|e| format!("{} {}", e.dns_name, e.record_type))
        .collect()
}

/// external-dns's plan table: each row of the worked example (notes §4.6).
#[test]
fn worked_example() {
    let current = vec![
        a("b.example.com", &["1.1.1.1"]).with_label("owner", "default"),
        a("c.example.com", &["1.1.1.1"]).with_label("owner", "default"),
        a("d.example.com", &["1.1.1.1"]),
        a("e.example.com", &["1.1.1.1"]).with_label("owner", "default"),
        a("f.example.com", &["1.1.1.1"]).with_label("owner", "other"),
        typed("g.example.com", RecordType::Cname, &["x.elb"]).with_label("owner", "default"),
        a("h.example.com", &["1.1.1.1"])
            .with_ttl(300)
            .with_label("owner", "default"),
    ];
    let desired = vec![
        a("a.example.com", &["1.2.3.4"]),
        a("c.example.com", &["1.1.1.2"]),
        a("d.example.com", &["1.1.1.2"]),
        a("e.example.com", &["1.1.1.1"]),
        typed("e.example.com", RecordType::Aaaa, &["::1"]),
        typed("f.example.com", RecordType::Aaaa, &["::1"]),
        a("g.example.com", &["1.2.3.4"]),
        typed("g.example.com", RecordType::Cname, &["y"]),
        a("h.example.com", &["1.1.1.1"]),
    ];
    let plan = calculate(&current, &desired, &config(Policy::Sync));
    let changes = &plan.changes;
    assert_eq!(
        names(&changes.create),
        ["a.example.com A", "e.example.com AAAA", "g.example.com A"]
    );
    assert_eq!(
        names(&changes.delete),
        ["b.example.com A", "g.example.com CNAME"]
    );
    assert_eq!(names(&changes.update_old), ["c.example.com A"]);
    assert_eq!(changes.update_new[0].targets, ["1.1.1.2"]);
    assert_eq!(changes.update_new[0].owner(), "default");
    // f's AAAA is blocked by another owner's A (external-dns counts it); d's
    // update is skipped because nobody owns its A (signpost counts it too).
    let mut mismatches = plan.owner_mismatches.clone();
    mismatches.sort();
    let report = |foreign: &str| OwnerMismatch {
        record_type: RecordType::A,
        foreign_owner: foreign.to_owned(),
        domain: "example.com".to_owned(),
    };
    assert_eq!(mismatches, [report(""), report("other")]);
}

/// §4.4: upsert-only drops deletes, create-only drops updates too.
#[test]
fn policies() {
    let current = vec![
        a("old.example.com", &["1.1.1.1"]).with_label("owner", "default"),
        a("upd.example.com", &["1.1.1.1"]).with_label("owner", "default"),
    ];
    let desired = vec![
        a("upd.example.com", &["2.2.2.2"]),
        a("new.example.com", &["3.3.3.3"]),
    ];
    let sync = calculate(&current, &desired, &config(Policy::Sync)).changes;
    assert_eq!(
        (sync.create.len(), sync.update_new.len(), sync.delete.len()),
        (1, 1, 1)
    );
    let upsert = calculate(&current, &desired, &config(Policy::UpsertOnly)).changes;
    assert_eq!(
        (
            upsert.create.len(),
            upsert.update_new.len(),
            upsert.delete.len()
        ),
        (1, 1, 0)
    );
    let create = calculate(&current, &desired, &config(Policy::CreateOnly)).changes;
    assert_eq!(
        (
            create.create.len(),
            create.update_new.len(),
            create.delete.len()
        ),
        (1, 0, 0)
    );
}

/// §4.2: with the noop registry (no owner id) nothing is owner-checked.
#[test]
fn noop_registry_touches_unowned_records() {
    let current = vec![a("x.example.com", &["1.1.1.1"])];
    let mut config = config(Policy::Sync);
    config.owner_id.clear();
    let plan = calculate(&current, &[], &config);
    assert_eq!(names(&plan.changes.delete), ["x.example.com A"]);
}

/// §4.3: the resource that already holds a name keeps it.
#[test]
fn resolve_update_keeps_the_current_resource() {
    let current = vec![
        a("x.example.com", &["1.1.1.1"])
            .with_label("owner", "default")
            .with_label("resource", "service/ns/b"),
    ];
    let desired = vec![
        a("x.example.com", &["1.1.1.2"]).with_label("resource", "service/ns/a"),
        a("x.example.com", &["1.1.1.3"])
            .with_ttl(60)
            .with_label("resource", "service/ns/b"),
    ];
    let plan = calculate(&current, &desired, &config(Policy::Sync));
    assert_eq!(plan.changes.update_new[0].targets, ["1.1.1.3"]);
    // Creating: the least target list wins.
    let plan = calculate(&[], &desired, &config(Policy::Sync));
    assert_eq!(plan.changes.create[0].targets, ["1.1.1.2"]);
}

/// Only a configured TTL, different targets or properties cause an update;
/// names compare case-insensitively and unmanaged types are invisible.
#[test]
fn update_triggers_and_invisible_records() {
    let current = vec![
        a("x.example.com", &["1.1.1.1"])
            .with_ttl(300)
            .with_label("owner", "default"),
        typed("x.example.com", RecordType::Mx, &["10 mail.example.com"]),
    ];
    let same = vec![a("X.Example.com.", &["1.1.1.1"])];
    assert!(
        !calculate(&current, &same, &config(Policy::Sync))
            .changes
            .has_changes()
    );
    let ttl = vec![a("x.example.com", &["1.1.1.1"]).with_ttl(60)];
    assert_eq!(
        calculate(&current, &ttl, &config(Policy::Sync))
            .changes
            .update_new
            .len(),
        1
    );
    let mut forced = current.clone();
    forced[0].set_property(crate::endpoint::FORCE_UPDATE, "true");
    assert_eq!(
        calculate(&forced, &same, &config(Policy::Sync))
            .changes
            .update_new
            .len(),
        1
    );
    // An MX (unmanaged) does not block a create of AAAA.
    let more = vec![
        a("x.example.com", &["1.1.1.1"]),
        typed("x.example.com", RecordType::Aaaa, &["::1"]),
    ];
    assert_eq!(
        names(
            &calculate(&current, &more, &config(Policy::Sync))
                .changes
                .create
        ),
        ["x.example.com AAAA"]
    );
}

/// Names outside the domain filter are neither planned nor touched.
#[test]
fn domain_filter() {
    let mut config = config(Policy::Sync);
    config.domain_filter = DomainFilter::new(&["example.com".to_owned()], &[]);
    let current = vec![a("x.other.org", &["1.1.1.1"]).with_label("owner", "default")];
    let desired = vec![
        a("y.other.org", &["1.1.1.1"]),
        a("y.example.com", &["1.1.1.1"]),
    ];
    let plan = calculate(&current, &desired, &config);
    assert_eq!(names(&plan.changes.create), ["y.example.com A"]);
    assert!(plan.changes.delete.is_empty());
    assert_eq!(names(&plan.filtered_out), ["y.other.org A"]);
}
