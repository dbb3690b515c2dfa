"""Hot, warm and cold tiers: memory estimates, placement policy and the manager applying it."""
