"""Security primitives: password hashing, signed tokens, security headers."""
