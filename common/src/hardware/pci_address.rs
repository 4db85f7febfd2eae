//! PCI addresses (`0000:c1:00.0`), ordered the way the toolkit numbers GPUs.

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A PCI function address. The derived order (domain, bus, device, function)
/// is the GPU order of the whole toolkit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PciAddress {
    pub domain: u32,
    pub bus: u8,
    pub device: u8,
    pub function: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a PCI address (expected DDDD:BB:DD.F or BB:DD.F)")]
pub struct PciAddressError(pub String);

impl PciAddress {
    /// The KFD topology's `location_id`: bus, device and function packed as in
    /// the kernel's `PCI_DEVID` without the domain.
    pub fn location_id(&self) -> u32 {
        (u32::from(self.bus) << 8) | (u32::from(self.device) << 3) | u32::from(self.function)
    }

    pub fn from_location(domain: u32, location_id: u32) -> Self {
        PciAddress {
            domain,
            bus: ((location_id >> 8) & 0xff) as u8,
            device: ((location_id >> 3) & 0x1f) as u8,
            function: (location_id & 0x7) as u8,
        }
    }
}

impl FromStr for PciAddress {
    type Err = PciAddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PciAddressError(s.to_string());
        let (head, function) = s.rsplit_once('.').ok_or_else(err)?;
        let mut parts: Vec<&str> = head.split(':').collect();
        let domain = match parts.len() {
            3 => parts.remove(0),
            2 => "0",
            _ => return Err(err()),
        };
        let hex = |v: &str, max_len: usize| -> Result<u32, PciAddressError> {
            if v.is_empty() || v.len() > max_len || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            u32::from_str_radix(v, 16).map_err(|_| err())
        };
        let device = hex(parts[1], 2)?;
        let function = hex(function, 1)?;
        if device > 0x1f || function > 7 {
            return Err(err());
        }
        Ok(PciAddress {
            domain: hex(domain, 8)?,
            bus: hex(parts[0], 2)? as u8,
            device: device as u8,
            function: function as u8,
        })
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

impl Serialize for PciAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_long_and_short_forms() {
        let a: PciAddress = "0000:c1:00.0".parse().unwrap();
        assert_eq!(a, "C1:00.0".parse().unwrap());
        assert_eq!(a.to_string(), "0000:c1:00.0");
        assert_eq!(a.location_id(), 0xc100);
        assert_eq!(PciAddress::from_location(0, 0xc100), a);
        let b: PciAddress = "0001:05:1f.7".parse().unwrap();
        assert_eq!(b.to_string(), "0001:05:1f.7");
        assert!(a < b);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "c1:00",
            "c1.0",
            "g1:00.0",
            "c1:20.0",
            "c1:00.8",
            "1:2:3:4.0",
            "0000:c1:00.0x",
        ] {
            assert!(s.parse::<PciAddress>().is_err(), "{s}");
        }
    }
}
