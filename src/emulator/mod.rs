//! Placeholder (emulator in progress).
