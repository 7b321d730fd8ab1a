//! The data directory holds what an attacker on the host would most like to change: the
//! checkpoint (where every source resumes), the alert store, the audit log and the dead
//! letters (raw production rows). fundguard creates it readable by its own user only and
//! says so when an existing one lets other users in; it never changes the permissions of a
//! directory it did not create, since an operator may share it with a backup job on purpose.

use std::path::Path;

/// Creates `dir` (and its parents) if it is missing — owner-only (`0700`) on Unix — and
/// returns a warning to log when an existing directory is writable by other users.
pub fn prepare(dir: &Path) -> std::io::Result<Option<String>> {
    if !dir.exists() {
        create_private(dir)?;
        return Ok(None);
    }
    Ok(loose_permissions(dir)?.map(|mode| {
        format!(
            "the data directory {} can be written by other users (mode {mode:o}): anyone who can write it can move the checkpoint, alter alerts or the audit log; run `chmod 700 {}`",
            dir.display(),
            dir.display()
        )
    }))
}

#[cfg(unix)]
fn create_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// The directory's mode when group or others may write to it.
#[cfg(unix)]
fn loose_permissions(dir: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    Ok((mode & 0o022 != 0).then_some(mode))
}

#[cfg(not(unix))]
fn loose_permissions(_dir: &Path) -> std::io::Result<Option<u32>> {
    Ok(None)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::prepare;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_directory_is_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/data");
        assert_eq!(prepare(&dir).unwrap(), None);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn an_existing_directory_is_left_alone_but_a_writable_one_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert_eq!(prepare(&dir).unwrap(), None);
        assert_eq!(mode(&dir), 0o750, "permissions of a directory fundguard did not create are not changed");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let warning = prepare(&dir).unwrap().expect("a world-writable data directory is reported");
        assert!(warning.contains("777") && warning.contains("chmod 700"), "{warning}");
        assert_eq!(mode(&dir), 0o777);
    }
}
