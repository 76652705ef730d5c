//! Unit tests for the catalog loader and watcher, driven by the fixtures in `tests/data/`.
//!
//! Error tests assert the exact file and line, since `signpost check` prints them to operators.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use super::*;

// === helpers ===

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn load_ok(paths: &[PathBuf]) -> CatalogState {
    match load_paths(paths) {
        Ok(state) => state,
        Err(errors) => panic!("expected the catalog to load, got:\n{errors}"),
    }
}

fn load_err(paths: &[PathBuf]) -> LoadErrors {
    match load_paths(paths) {
        Ok(state) => panic!("expected errors, got {state:#?}"),
        Err(errors) => errors,
    }
}

/// Loads one fixture that must fail; returns `(line, message)` for each error, all of which
/// must name that fixture.
fn fixture_errors(name: &str) -> Vec<(u32, String)> {
    let path = data(name);
    let errors = load_err(std::slice::from_ref(&path));
    errors
        .iter()
        .map(|error| {
            assert_eq!(error.file, path, "error names the wrong file: {error}");
            (
                error
                    .line
                    .unwrap_or_else(|| panic!("error has no line: {error}")),
                error.message.clone(),
            )
        })
        .collect()
}

fn owned(expected: &[(u32, &str)]) -> Vec<(u32, String)> {
    expected
        .iter()
        .map(|(line, message)| (*line, (*message).to_owned()))
        .collect()
}

fn service_names(state: &CatalogState) -> Vec<String> {
    state
        .services
        .iter()
        .map(|service| qualified(&service.metadata))
        .collect()
}

fn slice_names(state: &CatalogState) -> Vec<String> {
    state
        .endpoint_slices
        .iter()
        .map(|slice| qualified(&slice.metadata))
        .collect()
}

fn qualified(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        metadata.namespace.as_deref().unwrap_or("<none>"),
        metadata.name.as_deref().unwrap_or("<none>")
    )
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "signpost-catalog-{}-{unique}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent");
        }
        fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const SERVICE_A: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n";
const SERVICE_B: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: b\n";

// === formats ===

/// The design's promise: `kubectl get svc,endpointslices -A -o yaml` output loads as it is,
/// managedFields, status and all.
#[test]
fn kubectl_list_output_loads_as_printed() {
    let state = load_ok(&[data("kubectl-list.yaml")]);
    assert_eq!(
        service_names(&state),
        ["default/kubernetes", "shop/web", "shop/db"]
    );
    assert_eq!(
        slice_names(&state),
        [
            "default/kubernetes",
            "shop/web-8x2lq",
            "shop/web-v6r4t",
            "shop/db-q7wz2"
        ]
    );

    let web = &state.services[1];
    let spec = web.spec.as_ref().expect("web has a spec");
    assert_eq!(
        spec.cluster_ips.as_deref(),
        Some(&["10.96.120.15".to_owned(), "fd00:10:96::7f3a".to_owned()][..])
    );
    let annotations = web
        .metadata
        .annotations
        .as_ref()
        .expect("web has annotations");
    assert_eq!(annotations["dns.aikernel.io/geo-region"], "eu-west");
    assert!(
        annotations["kubectl.kubernetes.io/last-applied-configuration"]
            .starts_with("{\"apiVersion\"")
    );
    assert_eq!(
        state.services[2]
            .spec
            .as_ref()
            .and_then(|spec| spec.cluster_ip.as_deref()),
        Some("None")
    );

    let web_slice = &state.endpoint_slices[1];
    assert_eq!(web_slice.address_type, "IPv4");
    assert_eq!(web_slice.endpoints.len(), 2);
    assert_eq!(web_slice.endpoints[1].addresses, ["10.244.2.31"]);
    assert_eq!(web_slice.endpoints[1].zone.as_deref(), Some("eu-west-1b"));
    assert_eq!(
        state.endpoint_slices[2].endpoints[0].addresses,
        ["fd00:10:244:1::11"]
    );
}

/// Multi-document YAML: empty and comment-only documents are skipped, other kinds are skipped,
/// a missing namespace becomes `default`.
#[test]
fn multi_document_yaml() {
    let state = load_ok(&[data("multi.yaml")]);
    assert_eq!(service_names(&state), ["default/api", "tools/headless"]);
    assert_eq!(slice_names(&state), ["default/api-1"]);
    let slice = &state.endpoint_slices[0];
    assert_eq!(slice.endpoints.len(), 2);
    assert_eq!(
        slice.endpoints[1]
            .conditions
            .as_ref()
            .and_then(|conditions| conditions.ready),
        Some(false)
    );
}

/// `kubectl get ... -o json` output.
#[test]
fn json_list() {
    let state = load_ok(&[data("cluster.json")]);
    assert_eq!(service_names(&state), ["shop/cart"]);
    assert_eq!(slice_names(&state), ["shop/cart-9fk2d"]);
    assert_eq!(
        state.endpoint_slices[0].endpoints[0].node_name.as_deref(),
        Some("worker-a")
    );
}

/// A file given explicitly is read whatever its extension; JSON is recognised by its `{`, and
/// concatenated JSON objects are separate documents.
#[test]
fn json_stream_in_a_file_without_json_extension() {
    let dir = TempDir::new("json-stream");
    let path = dir.write(
        "objects.txt",
        "{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"a\"}}\n\
         {\"apiVersion\": \"v1\", \"kind\": \"Service\",\n \"metadata\": {\"name\": \"B\"}}\n",
    );
    let errors = load_err(std::slice::from_ref(&path));
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.0[0].line, Some(3), "{errors}");

    dir.write(
        "objects.txt",
        "{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"a\"}}\n",
    );
    assert_eq!(service_names(&load_ok(&[path])), ["default/a"]);
}

/// The JSON header is read without a full scan when `apiVersion` and `kind` come first as
/// plain strings; any other layout (members in another order, escapes) parses properly, and a
/// contradicting member after the header still fails the object.
#[test]
fn json_header_in_any_layout() {
    let dir = TempDir::new("json-header");
    let path = dir.write(
        "objects.json",
        "{\"kind\": \"Service\", \"apiVersion\": \"v1\", \"metadata\": {\"name\": \"a\"}}\n\
         {\"metadata\": {\"name\": \"b\"}, \"apiVersion\": \"v1\", \"kind\": \"Service\"}\n\
         {\"apiVersion\": \"v1\", \"kind\": \"Serv\\u0069ce\", \"metadata\": {\"name\": \"c\"}}\n\
         {\"apiVersion\" : \"v1\" ,\n \"kind\":\"Service\",\"metadata\":{\"name\":\"d\"}}\n",
    );
    assert_eq!(
        service_names(&load_ok(std::slice::from_ref(&path))),
        ["default/a", "default/b", "default/c", "default/d"]
    );
    dir.write(
        "objects.json",
        "{\"apiVersion\": \"v1\", \"kind\": \"Service\", \"metadata\": {\"name\": \"a\"},\n\
         \"kind\": \"Pod\"}\n",
    );
    let errors = load_err(&[path]);
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.0[0].line, Some(2), "{errors}");
}

/// A JSON list's items are split in the pass that finds the file's documents; documents of any
/// other shape (`items` null, not an array, not a list's, given twice) load or fail as they would
/// on their own, with the same lines.
#[test]
fn json_lists_split_with_the_documents() {
    let dir = TempDir::new("json-split");
    let path = dir.write(
        "objects.json",
        "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\n\
         {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"}},\n\
         {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"b\"}}]}\n\
         {\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":null}\n\
         {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"c\"},\"items\":[1]}\n",
    );
    assert_eq!(
        service_names(&load_ok(std::slice::from_ref(&path))),
        ["default/a", "default/b", "default/c"]
    );
    // A bad item in the second document is named by its file line and index.
    dir.write(
        "objects.json",
        "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"}}\n\
         {\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\n\
         {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"a2\"}},\n\
         {\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"B\"}}]}\n",
    );
    let errors = load_err(std::slice::from_ref(&path));
    assert_eq!(errors.len(), 1, "{errors}");
    assert_eq!(errors.0[0].line, Some(4), "{errors}");
    assert!(errors.0[0].message.starts_with("items[1]: "), "{errors}");
    // `items` that is not an array, or given twice, fails the list at its line.
    for items in ["{\"a\":1}", "[],\"items\":[]"] {
        dir.write(
            "objects.json",
            &format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"a\"}}}}\n\
                 {{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":{items}}}\n"
            ),
        );
        let errors = load_err(std::slice::from_ref(&path));
        assert_eq!(errors.len(), 1, "{items}: {errors}");
        assert_eq!(errors.0[0].line, Some(2), "{items}: {errors}");
    }
}

/// Items of a list as the API server returns it (`ServiceList`) carry no kind or apiVersion.
#[test]
fn typed_list_items_need_no_kind() {
    let dir = TempDir::new("typed-list");
    let path = dir.write(
        "services.yaml",
        "apiVersion: v1\nkind: ServiceList\nitems:\n  - metadata:\n      name: a\n  - metadata:\n      name: b\n",
    );
    assert_eq!(service_names(&load_ok(&[path])), ["default/a", "default/b"]);
}

/// A flow-style list cannot be cut into items by line; it still loads, and item errors name the
/// item and the list's line.
#[test]
fn flow_style_list() {
    let dir = TempDir::new("flow-list");
    let good = dir.write(
        "flow.yaml",
        "# flow style\n{apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: Service, metadata: {name: a}}]}\n",
    );
    assert_eq!(service_names(&load_ok(&[good])), ["default/a"]);

    let bad = dir.write(
        "bad-flow.yaml",
        "\n{apiVersion: v1, kind: List, items: [{apiVersion: v1, kind: Service, metadata: {name: a}}, {kind: Service}]}\n",
    );
    assert_eq!(
        fixture_errors_at(&bad),
        owned(&[(2, "items[1]: missing apiVersion")])
    );
}

fn fixture_errors_at(path: &Path) -> Vec<(u32, String)> {
    load_err(&[path.to_path_buf()])
        .iter()
        .map(|error| (error.line.expect("error has a line"), error.message.clone()))
        .collect()
}

/// Windows line endings do not shift lines or break list slicing.
#[test]
fn crlf_line_endings() {
    let dir = TempDir::new("crlf");
    let text = "apiVersion: v1\r\nkind: List\r\nitems:\r\n- apiVersion: v1\r\n  kind: Service\r\n  metadata:\r\n    name: a\r\n\
                - apiVersion: v1\r\n  kind: Service\r\n  metadata:\r\n    name: Bad\r\n";
    let path = dir.write("crlf.yaml", text);
    assert_eq!(
        fixture_errors_at(&path),
        owned(&[(
            11,
            "items[1]: Service name \"Bad\" is not a valid DNS label (RFC 1123: 1 to 63 lower-case letters, \
             digits or '-', starting and ending with a letter or digit)"
        )])
    );
}

/// Found by `fuzz/fuzz_targets/catalog.rs`: libyaml reports an error at the
/// end of a text without a final newline on the line after the last one;
/// the error names the last line, which the file has.
#[test]
fn yaml_error_at_the_end_of_the_file_names_its_last_line() {
    let dir = TempDir::new("eof-error");
    let path = dir.write("eof.yaml", "o:\nc");
    let errors = fixture_errors_at(&path);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, 2, "{errors:?}");
    // Inside a document after others and in a List's item, the same.
    let path = dir.write(
        "eof-list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a\n",
    );
    for (line, message) in fixture_errors_at(&path) {
        assert!((1..=7).contains(&line), "line {line}: {message}");
    }
}

// === paths ===

/// Directories are walked in sorted order; hidden entries and other extensions are skipped.
#[test]
fn directory_walk_skips_hidden_entries() {
    let state = load_ok(&[data("tree")]);
    assert_eq!(service_names(&state), ["tree/alpha", "tree/beta"]);
    assert_eq!(slice_names(&state), ["tree/alpha-1"]);
}

/// A Kubernetes ConfigMap mount: visible names are symlinks into `..data`, which links to a
/// hidden timestamped directory. Each object loads once.
#[cfg(unix)]
#[test]
fn configmap_mount_symlinks_are_followed() {
    use std::os::unix::fs::symlink;

    let dir = TempDir::new("configmap");
    dir.write("..2025_02_03_17_40_22.123456789/services.yaml", SERVICE_A);
    symlink("..2025_02_03_17_40_22.123456789", dir.0.join("..data")).expect("symlink ..data");
    symlink("..data/services.yaml", dir.0.join("services.yaml")).expect("symlink services.yaml");
    assert_eq!(
        service_names(&load_ok(std::slice::from_ref(&dir.0))),
        ["default/a"]
    );

    // Naming the file and its directory loads it once, not as a duplicate.
    let both = [dir.0.clone(), dir.0.join("services.yaml")];
    assert_eq!(service_names(&load_ok(&both)), ["default/a"]);
}

/// Issue 19 (soak): an entry the walk would not read (a writer's `x.json.tmp`, renamed away
/// between the listing and the read, or a dangling link under such a name) is no error; a
/// dangling link under a catalog name still is.
#[cfg(unix)]
#[test]
fn unreadable_entries_the_walk_skips_are_no_error() {
    use std::os::unix::fs::symlink;

    let dir = TempDir::new("vanished");
    dir.write("services.yaml", SERVICE_A);
    symlink("gone", dir.0.join("services.json.tmp")).expect("symlink");
    assert_eq!(
        service_names(&load_ok(std::slice::from_ref(&dir.0))),
        ["default/a"]
    );
    symlink("gone", dir.0.join("broken.yaml")).expect("symlink");
    let errors = load_err(std::slice::from_ref(&dir.0));
    assert_eq!(errors.0.len(), 1, "{errors}");
}

#[test]
fn missing_path_is_an_error() {
    let path = data("does-not-exist.yaml");
    let errors = load_err(std::slice::from_ref(&path));
    assert_eq!(
        errors.0,
        [LoadError::new(&path, None, "path does not exist")]
    );
}

// === errors, each with its exact file and line ===

#[test]
fn service_without_name() {
    assert_eq!(
        fixture_errors("errors/missing-name.yaml"),
        owned(&[(2, "Service has no metadata.name")])
    );
}

#[test]
fn endpoint_slice_without_service_name_label() {
    assert_eq!(
        fixture_errors("errors/missing-label.yaml"),
        owned(&[(
            7,
            "EndpointSlice default/orphan-1: missing label kubernetes.io/service-name"
        )])
    );
}

/// Both places are named: the error sits at the second, the message points at the first.
#[test]
fn duplicate_service_across_files() {
    let first = data("errors/duplicate-a.yaml");
    let second = data("errors/duplicate-b.yaml");
    let errors = load_err(&[first.clone(), second.clone()]);
    assert_eq!(
        errors.0,
        [LoadError::new(
            &second,
            Some(7),
            format!(
                "duplicate Service shop/twice; first defined at {}:1",
                first.display()
            )
        )]
    );
}

#[test]
fn duplicate_in_one_file() {
    let dir = TempDir::new("duplicate");
    let path = dir.write(
        "twice.yaml",
        &format!("{SERVICE_A}---\n{SERVICE_B}---\n{SERVICE_A}"),
    );
    let errors = load_err(std::slice::from_ref(&path));
    assert_eq!(
        errors.0,
        [LoadError::new(
            &path,
            Some(11),
            format!(
                "duplicate Service default/a; first defined at {}:1",
                path.display()
            )
        )]
    );
}

#[test]
fn invalid_ip_addresses() {
    assert_eq!(
        fixture_errors("errors/bad-ips.yaml"),
        owned(&[
            (
                6,
                "Service default/badip: spec.clusterIP \"10.96.0.300\" is not an IP address"
            ),
            (
                6,
                "Service default/badip: spec.clusterIPs[0] \"10.96.0.300\" is not an IP address"
            ),
            (
                9,
                "Service default/badip: spec.clusterIPs[1] \"fd00::zz\" is not an IP address"
            ),
            (
                20,
                "EndpointSlice default/badip-v4: endpoints[0].addresses[1] \"10.4.0\" is not an IPv4 address"
            ),
            (
                23,
                "EndpointSlice default/badip-v4: endpoints[1].addresses[0] \"fd00::1\" is not an IPv4 address"
            ),
            (
                34,
                "EndpointSlice default/badip-v6: endpoints[0].addresses[0] \"10.4.0.2\" is not an IPv6 address"
            ),
        ])
    );
}

/// Two EndpointSlices with one name would double the Service's endpoints.
#[test]
fn duplicate_endpoint_slice_and_unknown_address_type() {
    let dir = TempDir::new("duplicate-slice");
    let slice = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: a-1\n  labels:\n    kubernetes.io/service-name: a\naddressType: IPv4\nendpoints: []\n";
    let odd = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: a-2\n  labels:\n    kubernetes.io/service-name: a\naddressType: IPX\nendpoints: []\n";
    let path = dir.write("slices.yaml", &format!("{slice}---\n{odd}---\n{slice}"));
    assert_eq!(
        fixture_errors_at(&path),
        vec![
            (16, "EndpointSlice default/a-2: unsupported addressType \"IPX\" (want IPv4, IPv6 or FQDN)".to_owned()),
            (19, format!("duplicate EndpointSlice default/a-1; first defined at {}:1", path.display())),
        ]
    );
}

/// RFC 1123 §2.1 labels, at most 63 octets (RFC 1035 §2.3.4), lower case as Kubernetes requires.
#[test]
fn names_must_be_dns_labels() {
    let rule = "RFC 1123: 1 to 63 lower-case letters, digits or '-', starting and ending with a letter or digit";
    assert_eq!(
        fixture_errors("errors/bad-names.yaml"),
        vec![
            (
                4,
                format!("Service name \"Web_Frontend\" is not a valid DNS label ({rule})")
            ),
            (
                11,
                format!(
                    "Service web: namespace \"Shop.Example\" is not a valid DNS label ({rule})"
                )
            ),
            (
                16,
                format!(
                    "Service name \"a-name-that-is-far-too-long-to-be-a-dns-label-because-it-has-64c\" \
                     is not a valid DNS label ({rule})"
                )
            ),
        ]
    );
}

#[test]
fn dns_label_rule() {
    for good in ["a", "web", "0day", "a-b", &"x".repeat(63)] {
        assert!(validate::is_dns_label(good), "{good:?} should be a label");
    }
    for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64)] {
        assert!(
            !validate::is_dns_label(bad),
            "{bad:?} should not be a label"
        );
    }
}

/// discovery.k8s.io/v1beta1 was removed in Kubernetes 1.25; its fields differ (topology).
#[test]
fn endpoint_slice_v1beta1_is_unsupported() {
    assert_eq!(
        fixture_errors("errors/v1beta1.yaml"),
        owned(&[(
            2,
            "unsupported apiVersion \"discovery.k8s.io/v1beta1\" for EndpointSlice (want \"discovery.k8s.io/v1\")"
        )])
    );
}

#[test]
fn missing_kind_or_api_version() {
    assert_eq!(
        fixture_errors("errors/missing-kind.yaml"),
        owned(&[
            (1, "missing kind"),
            (5, "missing apiVersion"),
            (9, "missing kind and apiVersion")
        ])
    );
}

/// Parser errors are mapped from the document to the file, including lines inside the message.
#[test]
fn syntax_and_type_errors() {
    assert_eq!(
        fixture_errors("errors/syntax.yaml"),
        owned(&[
            (
                12,
                "did not find expected key, while parsing a block mapping at line 9 column 3"
            ),
            (
                20,
                "spec.ports[0].port: invalid type: string \"eighty\", expected i32"
            ),
        ])
    );
}

/// Errors in list items name the item and the line inside it.
#[test]
fn list_item_errors() {
    assert_eq!(
        fixture_errors("errors/list-items.yaml"),
        owned(&[
            (
                17,
                "items[1]: spec.ports[0].protocol: invalid type: sequence, expected a string"
            ),
            (
                18,
                "items[2]: EndpointSlice shop/listed-1: missing label kubernetes.io/service-name"
            ),
            (
                26,
                "items[2]: EndpointSlice shop/listed-1: endpoints[0].addresses[0] \"10.6.0.999\" is not an IPv4 address"
            ),
            (27, "items[3]: missing apiVersion"),
        ])
    );
}

#[test]
fn json_item_errors() {
    assert_eq!(
        fixture_errors("errors/bad.json"),
        owned(&[(
            15,
            "items[1]: invalid type: string \"eighty\", expected i32"
        )])
    );
}

#[test]
fn invalid_utf8_names_the_line() {
    let dir = TempDir::new("utf8");
    let path = dir.0.join("latin1.yaml");
    fs::write(
        &path,
        b"apiVersion: v1\nkind: Service\nmetadata:\n  name: caf\xe9\n",
    )
    .expect("write");
    assert_eq!(
        fixture_errors_at(&path),
        owned(&[(4, "file is not valid UTF-8")])
    );
}

/// Operators see every mistake in one run (style rule 2): all files, all documents.
#[test]
fn every_error_is_reported_at_once() {
    let errors = load_err(&[data("errors")]);
    let mut files: Vec<_> = errors
        .iter()
        .map(|error| error.file.file_name().unwrap().to_owned())
        .collect();
    files.dedup();
    let expected = [
        "bad-ips.yaml",
        "bad-names.yaml",
        "bad.json",
        "duplicate-b.yaml",
        "list-items.yaml",
        "missing-kind.yaml",
        "missing-label.yaml",
        "missing-name.yaml",
        "syntax.yaml",
        "v1beta1.yaml",
    ];
    assert_eq!(files, expected.map(std::ffi::OsString::from), "{errors}");
    assert_eq!(errors.len(), 23, "{errors}");
}

#[test]
fn error_display() {
    let with_line = LoadError::new("a.yaml", Some(3), "missing kind");
    let without_line = LoadError::new("b", None, "path does not exist");
    assert_eq!(with_line.to_string(), "a.yaml:3: missing kind");
    assert_eq!(without_line.to_string(), "b: path does not exist");
    assert_eq!(
        LoadErrors(vec![with_line, without_line]).to_string(),
        "a.yaml:3: missing kind\nb: path does not exist"
    );
}

// === watcher ===

/// Sets a file's mtime, so tests do not depend on the file system's timestamp granularity.
fn set_mtime(path: &Path, seconds: u64) {
    let file = fs::OpenOptions::new().write(true).open(path).expect("open");
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        .expect("set mtime");
}

#[test]
fn watcher_detects_add_change_and_remove() {
    let dir = TempDir::new("watch");
    let a = dir.write("a.yaml", SERVICE_A);
    set_mtime(&a, 1_000);
    let mut watcher = CatalogWatcher::new(vec![dir.0.clone()]);
    assert!(
        watcher.fingerprint_changed(),
        "the first call reports a change"
    );
    assert!(!watcher.fingerprint_changed(), "nothing changed");

    let b = dir.write("b.yaml", SERVICE_B);
    assert!(watcher.fingerprint_changed(), "file added");
    assert!(!watcher.fingerprint_changed());

    dir.write("notes.txt", "not a manifest");
    dir.write(".hidden.yaml", "ignored");
    assert!(
        !watcher.fingerprint_changed(),
        "files the loader skips are not watched"
    );

    set_mtime(&a, 2_000);
    assert!(watcher.fingerprint_changed(), "mtime changed");
    assert!(!watcher.fingerprint_changed());

    fs::write(&a, format!("{SERVICE_A}# longer\n")).expect("rewrite");
    set_mtime(&a, 2_000);
    assert!(watcher.fingerprint_changed(), "size changed");

    // Atomic replace with the same size and mtime: only the inode differs.
    let replacement = dir.write("a.yaml.tmp", &format!("{SERVICE_A}# LONGER\n"));
    set_mtime(&replacement, 2_000);
    fs::rename(&replacement, &a).expect("rename");
    assert!(watcher.fingerprint_changed(), "inode changed");
    assert!(!watcher.fingerprint_changed());

    fs::remove_file(&b).expect("remove");
    assert!(watcher.fingerprint_changed(), "file removed");
    assert_eq!(
        service_names(&watcher.load().expect("loads")),
        ["default/a"]
    );
}

#[test]
fn watcher_detects_a_missing_path_appearing() {
    let dir = TempDir::new("watch-missing");
    let path = dir.0.join("later.yaml");
    let mut watcher = CatalogWatcher::new(vec![path.clone()]);
    assert!(watcher.fingerprint_changed());
    assert!(!watcher.fingerprint_changed(), "still missing");
    dir.write("later.yaml", SERVICE_A);
    assert!(watcher.fingerprint_changed(), "appeared");
}

/// Record sync reads Ingresses, Nodes and Pods from the catalog, as
/// `kubectl get ... -o yaml` prints them; their errors keep file:line.
#[test]
fn ingresses_nodes_and_pods_load_with_errors_at_their_lines() {
    let dir = TempDir::new("sync-kinds");
    let good = dir.write(
        "objects.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n  - host: web.example.com\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: n1\nstatus:\n  addresses:\n  - type: ExternalIP\n    address: 198.51.100.1\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p1\n    namespace: shop\n",
    );
    let state = load_ok(std::slice::from_ref(&good));
    assert_eq!(state.ingresses.len(), 1);
    assert_eq!(
        state.ingresses[0].metadata.namespace.as_deref(),
        Some("default")
    );
    assert_eq!(state.nodes.len(), 1);
    assert_eq!(state.pods[0].metadata.namespace.as_deref(), Some("shop"));

    let bad = dir.write(
        "bad.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n  - host: bad_host!.example.com\n---\napiVersion: v1\nkind: Node\nmetadata:\n  name: n1\nstatus:\n  addresses:\n  - type: InternalIP\n    address: not-an-ip\n---\napiVersion: extensions/v1beta1\nkind: Ingress\nmetadata:\n  name: old\n",
    );
    let errors = fixture_errors_at(&bad);
    assert_eq!(
        errors,
        owned(&[
            (
                7,
                "Ingress default/web: host \"bad_host!.example.com\" is not a valid DNS name"
            ),
            (16, "Node n1: InternalIP \"not-an-ip\" is not an IP address"),
            (
                18,
                "unsupported apiVersion \"extensions/v1beta1\" for Ingress (want \"networking.k8s.io/v1\")"
            ),
        ])
    );
    // A duplicate across files is reported at the second one.
    let copy = dir.write("copy.yaml", &fs::read_to_string(&good).unwrap());
    let errors = load_err(&[good, copy]);
    assert!(
        errors.to_string().contains("duplicate Ingress default/web"),
        "{errors}"
    );
}

/// A Service manifest in namespace `default` with one ClusterIP.
fn service_yaml(name: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  clusterIP: {ip}\n  ports:\n  - port: 80\n"
    )
}

/// The keys of the Services a batch adds or changes.
fn batch_services(batch: &crate::cluster::ObjectBatch) -> Vec<String> {
    use crate::cluster::{ObjectBatch, ObjectChange};
    let (ObjectBatch::Reset(changes) | ObjectBatch::Changes(changes)) = batch;
    changes
        .iter()
        .filter_map(|change| match change {
            ObjectChange::Service(key, Some(_)) => Some(key.1.clone()),
            _ => None,
        })
        .collect()
}

/// With a poll interval of an hour, a file written and renamed into place
/// still reaches the sink at once (inotify), and only the changed file's
/// objects are delivered.
#[tokio::test]
async fn a_renamed_file_wakes_the_poll_at_once() {
    use crate::cluster::ObjectBatch;
    use signpost_model::{Sink, Source, Update};
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    fs::create_dir(&catalog).unwrap();
    fs::write(catalog.join("a.yaml"), service_yaml("alpha", "10.0.0.1")).unwrap();
    fs::write(catalog.join("b.yaml"), service_yaml("beta", "10.0.0.2")).unwrap();
    let (sender, mut updates) = tokio::sync::mpsc::unbounded_channel();
    let sink = Sink::new(move |update: Update<ObjectBatch>| {
        let _ = sender.send(update);
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let source = Box::new(CatalogChanges::new(
        vec![catalog.clone()],
        Duration::from_secs(3600),
    ));
    let task = tokio::spawn(source.run(sink, cancel.clone()));
    let deadline = Duration::from_secs(30);
    let first = tokio::time::timeout(deadline, updates.recv())
        .await
        .expect("the first state")
        .unwrap();
    let Update::State(batch @ ObjectBatch::Reset(_)) = first else {
        panic!("expected a full state first, got {first:?}");
    };
    let mut names = batch_services(&batch);
    names.sort();
    assert_eq!(names, ["alpha", "beta"]);
    // Each change is written after the poll that delivered the one before
    // listed the files, so only a wake-up (not the hour-long interval) can
    // deliver it. (The first one may also be seen by the extra poll that
    // follows new watches.)
    for (round, ip) in ["10.0.0.3", "10.0.0.4", "10.0.0.5"].iter().enumerate() {
        let staging = dir.path().join("staging.yaml");
        fs::write(&staging, service_yaml("beta", ip)).unwrap();
        fs::rename(&staging, catalog.join("b.yaml")).unwrap();
        let next = tokio::time::timeout(deadline, updates.recv())
            .await
            .unwrap_or_else(|_| panic!("change {round} not delivered within the deadline"))
            .unwrap();
        let Update::State(batch @ ObjectBatch::Changes(_)) = next else {
            panic!("expected changes, got {next:?}");
        };
        assert_eq!(batch_services(&batch), ["beta"], "change {round}");
    }
    cancel.cancel();
    task.await.unwrap();
}

/// Runs [`CatalogChanges`] over `paths`; returns its updates and a handle
/// that stops it.
fn run_changes(
    paths: Vec<PathBuf>,
    poll: Duration,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<signpost_model::Update<crate::cluster::ObjectBatch>>,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    use crate::cluster::ObjectBatch;
    use signpost_model::{Sink, Source, Update};
    let (sender, updates) = tokio::sync::mpsc::unbounded_channel();
    let sink = Sink::new(move |update: Update<ObjectBatch>| {
        let _ = sender.send(update);
    });
    let cancel = tokio_util::sync::CancellationToken::new();
    let source = Box::new(CatalogChanges::new(paths, poll));
    let task = tokio::spawn(source.run(sink, cancel.clone()));
    (updates, cancel, task)
}

/// The next update within a generous deadline.
async fn next_update(
    updates: &mut tokio::sync::mpsc::UnboundedReceiver<
        signpost_model::Update<crate::cluster::ObjectBatch>,
    >,
    what: &str,
) -> signpost_model::Update<crate::cluster::ObjectBatch> {
    tokio::time::timeout(Duration::from_secs(30), updates.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 30 s"))
        .expect("the source ended")
}

/// The keys of the Services a batch removes.
fn batch_removed_services(batch: &crate::cluster::ObjectBatch) -> Vec<String> {
    use crate::cluster::{ObjectBatch, ObjectChange};
    let (ObjectBatch::Reset(changes) | ObjectBatch::Changes(changes)) = batch;
    changes
        .iter()
        .filter_map(|change| match change {
            ObjectChange::Service(key, None) => Some(key.1.clone()),
            _ => None,
        })
        .collect()
}

/// A file renamed into place is checked alone (inotify names it), and the
/// kept duplicate index still finds a Service another file defines, names
/// both places, keeps the last state, and lets the fix through; a Service
/// taken out of a file is removed.
#[tokio::test]
async fn a_named_file_change_checks_duplicates_and_removals() {
    use crate::cluster::ObjectBatch;
    use signpost_model::Update;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    fs::create_dir(&catalog).unwrap();
    fs::write(catalog.join("a.yaml"), service_yaml("alpha", "10.0.0.1")).unwrap();
    fs::write(
        catalog.join("b.yaml"),
        format!(
            "{}---\n{}",
            service_yaml("beta", "10.0.0.2"),
            service_yaml("gamma", "10.0.0.3")
        ),
    )
    .unwrap();
    let (mut updates, cancel, task) = run_changes(vec![catalog.clone()], Duration::from_secs(3600));
    let Update::State(ObjectBatch::Reset(_)) = next_update(&mut updates, "first state").await
    else {
        panic!("expected a full state first");
    };
    let replace = |name: &str, text: String| {
        let staging = dir.path().join("staging.yaml");
        fs::write(&staging, text).unwrap();
        fs::rename(&staging, catalog.join(name)).unwrap();
    };
    // A first change, delivered after the watches are in place (the poll
    // that follows new watches lists everything): the ones after it are
    // woken by their own events.
    replace("a.yaml", service_yaml("alpha", "10.0.0.5"));
    let Update::State(batch @ ObjectBatch::Changes(_)) = next_update(&mut updates, "warm").await
    else {
        panic!("expected changes");
    };
    assert_eq!(batch_services(&batch), ["alpha"]);
    // b.yaml defines alpha too: a duplicate, reported at b.yaml's line.
    replace(
        "b.yaml",
        format!(
            "{}---\n{}",
            service_yaml("beta", "10.0.0.2"),
            service_yaml("alpha", "10.0.0.9")
        ),
    );
    let Update::Problems(problems) = next_update(&mut updates, "the duplicate").await else {
        panic!("expected problems for the duplicate");
    };
    let text = format!("{problems:?}");
    assert!(
        text.contains("duplicate Service default/alpha; first defined at")
            && text.contains("a.yaml:1"),
        "{text}"
    );
    // Fixed: gamma left b.yaml and is removed; alpha stays where it was.
    replace("b.yaml", service_yaml("beta", "10.0.0.4"));
    let Update::State(batch @ ObjectBatch::Changes(_)) = next_update(&mut updates, "fix").await
    else {
        panic!("expected changes after the fix");
    };
    assert_eq!(batch_services(&batch), ["beta"]);
    assert_eq!(batch_removed_services(&batch), ["gamma"]);
    // gamma may now move to a.yaml: no duplicate is left behind in the index.
    replace(
        "a.yaml",
        format!(
            "{}---\n{}",
            service_yaml("alpha", "10.0.0.1"),
            service_yaml("gamma", "10.0.0.3")
        ),
    );
    let Update::State(batch @ ObjectBatch::Changes(_)) = next_update(&mut updates, "move").await
    else {
        panic!("expected changes for the move");
    };
    assert_eq!(batch_services(&batch), ["alpha", "gamma"]);
    assert!(batch_removed_services(&batch).is_empty());
    cancel.cancel();
    task.await.unwrap();
}

/// A ConfigMap mount: visible names are symlinks through `..data`, which
/// the kubelet swaps by renaming a new link over it. With a poll interval
/// of an hour the swap still reaches the sink (a hidden name asks for a
/// full listing).
#[tokio::test]
async fn a_configmap_swap_wakes_the_poll() {
    use crate::cluster::ObjectBatch;
    use signpost_model::Update;
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("mount");
    fs::create_dir_all(mount.join("..2026_11_30_01")).unwrap();
    fs::write(
        mount.join("..2026_11_30_01/services.yaml"),
        service_yaml("alpha", "10.0.0.1"),
    )
    .unwrap();
    symlink("..2026_11_30_01", mount.join("..data")).unwrap();
    symlink("..data/services.yaml", mount.join("services.yaml")).unwrap();
    let (mut updates, cancel, task) = run_changes(vec![mount.clone()], Duration::from_secs(3600));
    let Update::State(batch @ ObjectBatch::Reset(_)) = next_update(&mut updates, "first").await
    else {
        panic!("expected a full state first");
    };
    assert_eq!(batch_services(&batch), ["alpha"]);
    // The kubelet's update: a new timestamped directory, a new link, renamed over `..data`.
    fs::create_dir(mount.join("..2026_11_30_02")).unwrap();
    fs::write(
        mount.join("..2026_11_30_02/services.yaml"),
        service_yaml("beta", "10.0.0.2"),
    )
    .unwrap();
    symlink("..2026_11_30_02", mount.join("..data_tmp")).unwrap();
    fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    let Update::State(batch @ ObjectBatch::Changes(_)) = next_update(&mut updates, "swap").await
    else {
        panic!("expected changes after the swap");
    };
    assert_eq!(batch_services(&batch), ["beta"]);
    assert_eq!(batch_removed_services(&batch), ["alpha"]);
    cancel.cancel();
    task.await.unwrap();
}

/// A file seen through a symlink whose target lives in a directory nobody
/// watches changes without an event in the catalog's directory: the
/// interval's full listing (ten intervals apart while every catalog
/// directory is watched) still finds it.
#[tokio::test]
async fn the_interval_poll_finds_what_inotify_does_not_see() {
    use crate::cluster::ObjectBatch;
    use signpost_model::Update;
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    let elsewhere = dir.path().join("elsewhere");
    fs::create_dir(&catalog).unwrap();
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("a.yaml"), service_yaml("alpha", "10.0.0.1")).unwrap();
    symlink(elsewhere.join("a.yaml"), catalog.join("a.yaml")).unwrap();
    let (mut updates, cancel, task) = run_changes(vec![catalog.clone()], Duration::from_millis(20));
    let Update::State(ObjectBatch::Reset(_)) = next_update(&mut updates, "first").await else {
        panic!("expected a full state first");
    };
    let staging = elsewhere.join("staging.yaml");
    fs::write(&staging, service_yaml("beta", "10.0.0.2")).unwrap();
    fs::rename(&staging, elsewhere.join("a.yaml")).unwrap();
    let Update::State(batch @ ObjectBatch::Changes(_)) = next_update(&mut updates, "poll").await
    else {
        panic!("expected changes from the interval poll");
    };
    assert_eq!(batch_services(&batch), ["beta"]);
    cancel.cancel();
    task.await.unwrap();
}
