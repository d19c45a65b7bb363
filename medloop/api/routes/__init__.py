"""One router per actor; ``medloop.api.app`` assembles them."""
