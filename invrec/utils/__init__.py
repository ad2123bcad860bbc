"""Internal helpers shared by every invrec module (validation, ranking, seeding)."""
