//! Issue 13, "Done when" 1: random zones holding records owned by us, by
//! another owner id and by nobody, random desired state, every policy: after
//! one sync the zone holds the desired state for our names, nothing that is
//! not ours changed, and a second sync is a no-op. (Ownership rules: notes
//! §4.2 and §5, external-dns v0.22 `plan/plan.go`, `registry/txt`.)

use proptest::prelude::*;
use signpost_sync::controller::{PlanSettings, Reconciler};
use signpost_sync::endpoint::{Endpoint, RecordType};
use signpost_sync::filter::{DomainFilter, ManagedTypes};
use signpost_sync::metrics::SyncMetrics;
use signpost_sync::plan::Policy;
use signpost_sync::provider::inmemory::InMemory;
use signpost_sync::registry::names::TxtNames;
use signpost_sync::registry::txt::{TxtConfig, TxtRegistry};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const NAMES: usize = 5;
const TYPES: [RecordType; 3] = [RecordType::A, RecordType::Aaaa, RecordType::Cname];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Us,
    Other,
    Nobody,
}

fn name(index: usize) -> String {
    format!("n{index}.example.com")
}

fn target(record_type: RecordType, value: u8) -> String {
    match record_type {
        RecordType::A => format!("192.0.2.{value}"),
        RecordType::Aaaa => format!("2001:db8::{value:x}"),
        _ => format!("t{value}.example.net"),
    }
}

/// One name's current records: either a CNAME or a set of A/AAAA, each with an owner.
fn name_state() -> impl Strategy<Value = Vec<(RecordType, Owner, u8)>> {
    let owner = prop_oneof![Just(Owner::Us), Just(Owner::Other), Just(Owner::Nobody)];
    prop_oneof![
        Just(Vec::new()),
        (owner.clone(), 1u8..4).prop_map(|(o, v)| vec![(RecordType::Cname, o, v)]),
        proptest::collection::vec(
            (
                prop_oneof![Just(RecordType::A), Just(RecordType::Aaaa)],
                owner,
                1u8..4
            ),
            1..3
        )
        .prop_map(|mut v| {
            v.sort_by_key(|(t, _, _)| *t);
            v.dedup_by_key(|(t, _, _)| *t);
            v
        }),
    ]
}

/// Desired: per name, per type, maybe a target list.
fn desired_state() -> impl Strategy<Value = Vec<Vec<Option<Vec<u8>>>>> {
    proptest::collection::vec(
        proptest::collection::vec(
            proptest::option::of(proptest::collection::vec(1u8..4, 1..3)),
            3,
        ),
        NAMES,
    )
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Sync),
        Just(Policy::UpsertOnly),
        Just(Policy::CreateOnly)
    ]
}

fn prefix() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just("xyz-"), Just("%{record_type}.")]
}

fn owner_txt(owner: &str, index: usize) -> String {
    format!(
        "\"heritage=external-dns,external-dns/owner={owner},external-dns/resource=service/ns/s{index}\""
    )
}

struct Harness {
    provider: Arc<InMemory>,
    config: TxtConfig,
    policy: Policy,
}

impl Harness {
    fn sync(&self, desired: &[Endpoint]) -> bool {
        let registry = TxtRegistry::new(self.provider.clone(), self.config.clone());
        let settings = PlanSettings {
            policy: self.policy,
            domain_filter: DomainFilter::default(),
            managed: ManagedTypes::default(),
            old_owner_id: String::new(),
        };
        let mut reconciler = Reconciler::new(
            Box::new(registry),
            settings,
            false,
            Arc::new(SyncMetrics::default()),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let outcome = runtime
            .block_on(reconciler.run_once(desired.to_vec()))
            .unwrap();
        outcome.changes.has_changes()
    }

    fn zone(&self) -> BTreeMap<(String, RecordType), Vec<String>> {
        self.provider
            .snapshot()
            .into_iter()
            .map(|e| ((e.dns_name.clone(), e.record_type), sorted(e.targets)))
            .collect()
    }
}

fn sorted(mut targets: Vec<String>) -> Vec<String> {
    targets.sort();
    targets
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn one_sync_reaches_the_desired_state_and_touches_nothing_else(
        states in proptest::collection::vec(name_state(), NAMES),
        wanted in desired_state(),
        policy in policy(),
        prefix in prefix(),
    ) {
        let names = TxtNames::new(prefix, "", "").unwrap();
        let provider = Arc::new(InMemory::new(&["example.com".to_owned()]));
        let mut initial = Vec::new();
        for (index, records) in states.iter().enumerate() {
            for &(record_type, owner, value) in records {
                initial.push(Endpoint::new(&name(index), record_type, vec![target(record_type, value)]));
                let txt_name = names.txt_name(&name(index), record_type);
                match owner {
                    Owner::Us => initial.push(Endpoint::new(&txt_name, RecordType::Txt, vec![owner_txt("default", index)])),
                    Owner::Other => initial.push(Endpoint::new(&txt_name, RecordType::Txt, vec![owner_txt("other", index)])),
                    Owner::Nobody => {}
                }
            }
        }
        provider.insert(initial);
        let harness = Harness {
            provider,
            config: TxtConfig {
                owner_id: "default".to_owned(),
                names: names.clone(),
                key: None,
                encrypt: false,
                cache_interval: Duration::ZERO,
                managed: ManagedTypes::default(),
                old_owner_id: String::new(),
            },
            policy,
        };
        let before = harness.zone();

        let mut desired = Vec::new();
        for (index, per_type) in wanted.iter().enumerate() {
            for (slot, targets) in per_type.iter().enumerate() {
                let Some(values) = targets else { continue };
                let record_type = TYPES[slot];
                let mut list: Vec<String> = values.iter().map(|v| target(record_type, *v)).collect();
                list.sort();
                list.dedup();
                if record_type == RecordType::Cname {
                    list.truncate(1);
                }
                desired.push(
                    Endpoint::new(&name(index), record_type, list)
                        .with_label("resource", &format!("service/ns/s{index}")),
                );
            }
        }

        harness.sync(&desired);
        let after = harness.zone();

        for (index, records) in states.iter().enumerate() {
            let blocked = records.iter().any(|(_, owner, _)| *owner != Owner::Us);
            // The conflict rule: a wanted CNAME next to another wanted type is dropped.
            let wants_other = wanted[index][..2].iter().any(Option::is_some);
            for (slot, record_type) in TYPES.iter().enumerate() {
                let key = (name(index), *record_type);
                let current = records.iter().find(|(t, _, _)| t == record_type);
                let wish = wanted[index][slot].as_ref().filter(|_| !(*record_type == RecordType::Cname && wants_other));
                let wish: Option<Vec<String>> = wish.map(|values| {
                    let mut list: Vec<String> = values.iter().map(|v| target(*record_type, *v)).collect();
                    list.sort();
                    list.dedup();
                    if *record_type == RecordType::Cname { list.truncate(1); }
                    list
                });
                let txt_key = (names.txt_name(&name(index), *record_type), RecordType::Txt);
                match current {
                    // Not ours: the record and its TXT are exactly as before.
                    Some((_, owner, _)) if *owner != Owner::Us => {
                        prop_assert_eq!(after.get(&key), before.get(&key), "{:?} changed", key);
                        prop_assert_eq!(after.get(&txt_key), before.get(&txt_key), "{:?} changed", txt_key);
                    }
                    Some(_) => {
                        let expected = match (&wish, policy) {
                            (Some(list), Policy::Sync | Policy::UpsertOnly) => Some(list.clone()),
                            (None, Policy::Sync) => None,
                            _ => before.get(&key).cloned(),
                        };
                        prop_assert_eq!(after.get(&key).cloned(), expected.clone(), "ours {:?}", key);
                        prop_assert_eq!(after.contains_key(&txt_key), expected.is_some(), "TXT of {:?}", key);
                    }
                    None => {
                        let expected = if blocked { None } else { wish.clone() };
                        prop_assert_eq!(after.get(&key).cloned(), expected.clone(), "absent {:?}", key);
                        if expected.is_some() {
                            let txt = after.get(&txt_key).cloned().unwrap_or_default();
                            prop_assert!(txt.iter().any(|t| t.contains("external-dns/owner=default")), "TXT of {:?}: {:?}", key, txt);
                        }
                    }
                }
            }
        }
        // Nothing else appeared or vanished.
        for key in before.keys().chain(after.keys()) {
            let ours_name = (0..NAMES).any(|i| {
                key.0 == name(i) || TYPES.iter().any(|t| names.txt_name(&name(i), *t) == key.0)
            });
            prop_assert!(ours_name, "unexpected record {:?}", key);
        }
        prop_assert!(!harness.sync(&desired), "second sync was not a no-op");
        prop_assert_eq!(harness.zone(), after);
    }
}
