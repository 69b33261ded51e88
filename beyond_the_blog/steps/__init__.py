"""What one training step is made of, beyond loss.backward() and torch.optim: torch only.

    manual_gradients   every d loss / d p written out by hand, autograd's bits (the lesson's train_by_hand)
    batched_gradients  every run's gradients by hand at once, from sums of its data taken once (--runs)
    lockstep           single runs in lockstep: R runs as one, each bit for bit the single run (--lr-sweep)
    updates            plain SGD written out, L-BFGS as one step per epoch, SGD with one lr per run
    minibatches        --batch-size: each epoch's batches, one seeded generator per run
    rescaling          the product's rescaling symmetry: L-BFGS's move back to layers of equal size
"""
