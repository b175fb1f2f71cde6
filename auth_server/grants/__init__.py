"""The token endpoint's grant types, one module each, and the grant record that ties a user's
consent to every token issued from it."""
