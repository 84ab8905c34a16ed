"""The audit log: who did what to what, when and from where; append-only, hash-chained per
tenant so that an edited, deleted or reordered entry is detected and located."""
