"""Stacks as users write them: JSON-LD documents loaded into models, inventories, variables, secrets."""
