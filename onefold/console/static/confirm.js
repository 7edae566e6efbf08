// Forms that change data for good ask first: a form with data-confirm submits only once the user agrees.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
