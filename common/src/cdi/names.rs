//! CDI name rules: kinds `vendor.com/class`, device names of alphanumerics and
//! `_ . : -` starting with an alphanumeric.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid CDI device name {0:?}: use letters, digits and _ . : -, starting with a letter or digit")]
    Device(String),
    #[error("invalid CDI vendor {0:?}: use letters, digits and _ . -, starting and ending with a letter or digit")]
    Vendor(String),
    #[error("invalid CDI class {0:?}: use letters, digits and _ . -, starting and ending with a letter or digit")]
    Class(String),
    #[error("invalid CDI kind {0:?}: expected vendor.com/class")]
    Kind(String),
}

pub fn validate_device_name(name: &str) -> Result<(), NameError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(NameError::Device(name.to_string()))
    }
}

fn label_ok(label: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    alnum(label.chars().next())
        && alnum(label.chars().last())
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

pub fn validate_kind(vendor: &str, class: &str) -> Result<(), NameError> {
    if !label_ok(vendor) {
        return Err(NameError::Vendor(vendor.to_string()));
    }
    if !label_ok(class) {
        return Err(NameError::Class(class.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names() {
        for ok in ["0", "all", "0x1a2b", "gpu_0.part-1:x"] {
            assert!(validate_device_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-0", "_a", "a/b", "a b", "é"] {
            assert!(validate_device_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kinds() {
        assert!(validate_kind("amd.com", "gpu").is_ok());
        assert!(validate_kind("amd.com", "gpu.partition").is_ok());
        for (v, c) in [
            ("", "gpu"),
            ("amd.com.", "gpu"),
            ("amd.com", "-gpu"),
            ("a/b", "gpu"),
            ("amd.com", "g/pu"),
        ] {
            assert!(validate_kind(v, c).is_err(), "{v} {c}");
        }
    }
}
